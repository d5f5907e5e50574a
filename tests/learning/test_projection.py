"""FOT's projection math against references written from the paper (GPM's basis rule)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.errors import ConfigError
from learning.projection import (
    augmented_gram,
    check_dense_only,
    grow_basis,
    kernel_keys,
    layer_pairs,
    project,
    projector,
)

MLP = [(784, 200), (200,), (200, 200), (200,), (200, 10), (10,)]


def _orthonormal(d: int, k: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, k)))
    return q


def test_dense_layers_and_their_biases_are_found():
    assert layer_pairs(MLP) == [(0, 1), (2, 3), (4, 5)]
    assert layer_pairs([(4, 3), (3, 2), (2,)]) == [(0, None), (1, 2)]  # no bias on layer 0
    assert kernel_keys(MLP) == ["0", "2", "4"]
    check_dense_only(MLP, "mlp")
    for shapes in ([(5, 5, 1, 32), (32,), (800, 10), (10,)], [(4, 3), (3,), (3,), (3,)]):
        with pytest.raises(ConfigError, match="dense layers only") as info:
            check_dense_only(shapes, "cnn")
        assert "\n" not in str(info.value)


def test_augmented_gram_is_the_mean_outer_product_of_x_and_1():
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    a = np.array([[1.0, 2.0, 1.0], [3.0, -1.0, 1.0]])
    np.testing.assert_allclose(augmented_gram(x), a.T @ a / 2)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 4))
def test_a_projected_update_is_orthogonal_to_the_basis(seed, k, out):
    d = 7
    b = _orthonormal(d + 1, k, seed)
    rng = np.random.default_rng(seed + 1)
    dw, db = rng.standard_normal((d, out)), rng.standard_normal(out)
    pw, pb = project(dw, db, projector(b).astype(np.float64))
    assert np.abs(b.T @ np.concatenate([pw, pb[None]], 0)).max() < 1e-6
    # an input whose augmented form lies in span(B) gives the same output after the step
    coef = rng.standard_normal(k)
    v = b @ coef  # [x, 1] up to scale
    assert np.abs(v[:d] @ pw + v[d] * pb).max() < 1e-6
    # projecting twice changes nothing more (P is a projector)
    pw2, pb2 = project(pw, pb, projector(b).astype(np.float64))
    np.testing.assert_allclose(pw2, pw, atol=1e-6)
    np.testing.assert_allclose(pb2, pb, atol=1e-6)


def test_basis_spans_inputs_from_a_known_subspace_with_the_fewest_vectors():
    rng = np.random.default_rng(0)
    true = _orthonormal(9, 3, 1)
    scales = np.array([10.0, 3.0, 0.1])  # energies 100 : 9 : 0.01
    a = (rng.standard_normal((500, 3)) * scales) @ true.T  # augmented inputs, rank 3
    g = a.T @ a / len(a)
    full = grow_basis(None, g, 0.99999)
    assert full.shape == (9, 3)
    np.testing.assert_allclose(full @ full.T @ true, true, atol=1e-8)  # spans the subspace
    np.testing.assert_allclose(full.T @ full, np.eye(3), atol=1e-10)
    # 0.9 of the energy: the strongest direction alone carries 100/109.01 of it
    assert grow_basis(None, g, 0.9).shape == (9, 1)
    assert grow_basis(None, g, 0.95).shape == (9, 2)


def test_growing_keeps_the_old_basis_and_adds_only_what_it_misses():
    old = _orthonormal(6, 2, 3)
    g_same = old @ np.diag([4.0, 1.0]) @ old.T  # a new task in the old span
    np.testing.assert_array_equal(grow_basis(old, g_same, 0.99), old)
    new_dir = np.linalg.qr(np.concatenate([old, np.ones((6, 1))], 1))[0][:, 2:3]
    g = g_same + 2.0 * new_dir @ new_dir.T
    grown = grow_basis(old, g, 0.99)
    assert grown.shape == (6, 3)
    np.testing.assert_allclose(grown @ grown.T @ old, old, atol=1e-8)
    np.testing.assert_allclose(grown @ grown.T @ new_dir, new_dir, atol=1e-8)
    assert grow_basis(old, np.zeros((6, 6)), 0.99).shape == (6, 2)  # no energy: unchanged


@pytest.mark.tf
def test_the_compiled_projection_matches_the_numpy_reference():
    from learning.projection_tf import Projectors
    from learning.tf_import import import_tensorflow

    tf = import_tensorflow()
    shapes = [(5, 3), (3,), (3, 2), (2,)]
    proj = Projectors(tf, shapes)
    ps = [projector(_orthonormal(6, 2, 0)), projector(_orthonormal(4, 1, 1))]
    proj.assign(ps)
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    got = [np.asarray(g) for g in proj.apply([tf.constant(g) for g in grads])]
    for (k, b), p in zip([(0, 1), (2, 3)], ps, strict=True):
        want_w, want_b = project(grads[k], grads[b], p)
        np.testing.assert_allclose(got[k], want_w, atol=1e-5)
        np.testing.assert_allclose(got[b], want_b, atol=1e-5)
