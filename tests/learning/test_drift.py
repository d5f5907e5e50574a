"""OpenCV drift transforms: deterministic, pure, and of the strength asked for."""

from __future__ import annotations

import numpy as np
import pytest

from learning.config import build_config
from learning.drift import KINDS, apply_drift
from learning.federated_data import task_shard


def _images(n: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28, 1), np.uint8)
    x[:, 3:15, 5:9] = rng.integers(120, 255, (n, 12, 4, 1), dtype=np.uint8)  # off-centre bar
    return x


@pytest.mark.parametrize("kind", [*KINDS, "mixed"])
def test_same_seed_same_pixels_and_input_untouched(kind):
    x = _images()
    before = x.copy()
    a = apply_drift(x, kind, 0.7, np.random.default_rng([3, 1]))
    b = apply_drift(x, kind, 0.7, np.random.default_rng([3, 1]))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    assert a.shape == x.shape and a.dtype == np.uint8
    assert not np.array_equal(a, x)  # level 0.7 changes the images


@pytest.mark.parametrize("kind", [*KINDS, "mixed"])
def test_level_zero_is_the_identity(kind):
    x = _images()
    np.testing.assert_array_equal(apply_drift(x, kind, 0.0, np.random.default_rng(0)), x)


def test_strength_grows_with_level():
    x = _images()
    for kind in KINDS:
        # rotation: small angles, as a 4-pixel bar turned 90 degrees no longer overlaps at all
        levels = (0.03, 0.08, 0.2) if kind == "rotation" else (0.25, 0.5, 1.0)
        diffs = [
            np.abs(apply_drift(x, kind, lv, np.random.default_rng(0)).astype(int) - x).mean()
            for lv in levels
        ]
        assert diffs[0] < diffs[1] < diffs[2], kind


def test_rotation_by_a_quarter_turn_is_rot90():
    x = _images()
    r = apply_drift(x, "rotation", 0.5, np.random.default_rng(0))  # 90 degrees anticlockwise
    turned = np.rot90(x, k=1, axes=(1, 2))
    assert np.abs(r.astype(int) - turned.astype(int)).mean() < 1.0
    assert np.abs(r.astype(int) - x.astype(int)).mean() > 10.0


def test_client_task_data_is_transformed_once_and_cached():
    cfg = build_config(
        None,
        [
            'scenario="domain-incremental"',
            'drift="noise"',
            "rounds=10",
            "num-clients=5",
            "clients-per-round=2",
            "train-subset=1000",
        ],
    )
    a = task_shard(cfg, 2, 3)
    b = task_shard(cfg, 2, 3)
    assert a[0] is b[0]  # the cached array, not a recomputation
    assert not a[0].flags.writeable
    from learning import federated_data

    federated_data._task_shard.cache_clear()
    c = task_shard(cfg, 2, 3)
    np.testing.assert_array_equal(a[0], c[0])  # recomputed after a cache clear: same pixels
    assert not np.array_equal(task_shard(cfg, 1, 3)[0][:5], c[0][:5])
