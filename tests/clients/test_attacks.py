"""Attacks and faults: fixed by seed, and each update rule on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from clients.attacks import alie, fault_draw, flip_labels, malicious_clients, poison_update


def test_malicious_set_is_fixed_by_seed_and_sized_by_fraction():
    a = malicious_clients(0, 50, 0.2)
    assert a == malicious_clients(0, 50, 0.2)
    assert len(a) == 10 and all(0 <= c < 50 for c in a)
    assert a != malicious_clients(1, 50, 0.2)
    assert malicious_clients(0, 50, 0.0) == frozenset()


def test_fault_draws_repeat_and_differ_by_kind():
    assert fault_draw(3, 7, 11, "crash") == fault_draw(3, 7, 11, "crash")
    assert fault_draw(3, 7, 11, "crash") != fault_draw(3, 7, 11, "nan")
    draws = [fault_draw(0, r, 1, "crash") for r in range(2000)]
    assert 0.27 < np.mean(np.array(draws) < 0.3) < 0.33


def test_label_flip():
    np.testing.assert_array_equal(flip_labels(np.array([0, 3, 9]), 10), [9, 6, 0])


X = [np.array([1.0, 1.0]), np.array([0.0])]
Y = [np.array([2.0, 0.0]), np.array([1.0])]  # honest update (1, -1, 1)


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("sign-flip", [[-3.0, 5.0], [-4.0]]),  # x - 4 (y - x)
        ("scaling", [[5.0, -3.0], [4.0]]),  # x + 4 (y - x)
        ("free-ride", [[1.0, 1.0], [0.0]]),
        ("label-flip", [[2.0, 0.0], [1.0]]),  # data attack: update unchanged
    ],
)
def test_update_attacks(attack, expected):
    got = poison_update(attack, X, Y, 4.0, 1.0, np.random.default_rng(0))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e)


def test_gaussian_attack_is_noise_around_the_global_model():
    got = poison_update(
        "gaussian", [np.zeros(10_000)], [np.ones(10_000)], 1.0, 2.0, np.random.default_rng(0)
    )
    assert abs(got[0].mean()) < 0.1 and 1.9 < got[0].std() < 2.1


def test_alie_shifts_the_mean_by_z_standard_deviations():
    honest = [[np.array([1.0, 10.0])], [np.array([3.0, 10.0])]]  # mean (2, 10), std (1, 0)
    np.testing.assert_allclose(alie(honest, 1.5)[0], [0.5, 10.0])


def test_ipm_sends_minus_epsilon_times_the_mean_update():
    from clients.attacks import ipm

    updates = [[np.array([1.0, -2.0])], [np.array([3.0, 0.0])]]  # mean (2, -1)
    np.testing.assert_allclose(ipm(updates, 0.5)[0], [-1.0, 0.5])


def _reference_gamma(u: np.ndarray, p: np.ndarray) -> float:
    """Closed form: each ||u_i - mean - g p||^2 = B^2 is a quadratic in g; the bound
    holds (convex in g, true at g = 0) up to the smallest of the larger roots."""
    mean = u.mean(axis=0)
    bound2 = max(np.sum((a - b) ** 2) for a in u for b in u)
    roots = []
    for ui in u:
        d = mean - ui  # ||d + g p||^2 = B^2
        a, b, c = p @ p, 2 * d @ p, d @ d - bound2
        roots.append((-b + np.sqrt(b * b - 4 * a * c)) / (2 * a))
    return float(min(roots))


@pytest.mark.parametrize("kind", ["std", "unit-vec", "sign"])
def test_min_max_gamma_is_the_largest_that_keeps_the_distance_bound(kind):
    from clients.attacks import _min_max_gamma, _perturbation, min_max

    rng = np.random.default_rng(1)
    u = rng.normal(size=(5, 7)) + np.arange(7)
    p = _perturbation(u, kind)
    want = {
        "std": -u.std(axis=0),
        "unit-vec": -u.mean(axis=0) / np.linalg.norm(u.mean(axis=0)),
        "sign": -np.sign(u.mean(axis=0)),
    }[kind]
    np.testing.assert_allclose(p, want)
    gamma = _min_max_gamma(u, p, 10.0, 1e-9)
    np.testing.assert_allclose(gamma, _reference_gamma(u, p), rtol=1e-6)
    bound = max(np.linalg.norm(a - b) for a in u for b in u)
    m = u.mean(axis=0) + gamma * p
    assert np.linalg.norm(u - m, axis=1).max() <= bound  # the constraint holds
    m_more = u.mean(axis=0) + (gamma * (1 + 1e-4)) * p
    assert np.linalg.norm(u - m_more, axis=1).max() > bound  # and gamma is maximal
    # Per-layer arrays in, the same update out, dtypes kept.
    layers = [[r[:3].reshape(3, 1).astype(np.float32), r[3:].astype(np.float32)] for r in u]
    got = min_max(layers, kind, 10.0, 1e-9)
    assert [g.dtype for g in got] == [np.float32, np.float32]
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in got]), m, rtol=1e-5, atol=1e-5)
