"""Update-health numbers on hand-made updates."""

from __future__ import annotations

import numpy as np
import pytest

from server.health import update_health


def test_norms_cosines_and_nonfinite_counts():
    x = [np.zeros(2), np.zeros(1)]
    clients = [
        [np.array([3.0, 0.0]), np.array([4.0])],  # update (3, 0, 4): norm 5
        [np.array([3.0, 0.0]), np.array([4.0])],
        [np.array([-3.0, 0.0]), np.array([np.nan])],  # NaN counted and zeroed: (-3, 0, 0)
    ]
    after = [np.array([1.0, 0.0]), np.array([0.0])]
    h, norms = update_health(x, after, clients)
    assert h["global_update_norm"] == pytest.approx(1.0)
    assert h["nonfinite_values"] == 1
    np.testing.assert_allclose(norms, [5.0, 5.0, 3.0])
    mean = np.array([1.0, 0.0, 8.0 / 3.0])
    assert h["client_cosine_to_mean_min"] == pytest.approx(-3.0 / (3.0 * np.linalg.norm(mean)))
    assert h["client_update_norm_max"] == pytest.approx(5.0)


def test_identical_updates_are_perfectly_aligned():
    x = [np.zeros(3)]
    clients = [[np.array([1.0, 2.0, 2.0])]] * 4
    h, _ = update_health(x, clients[0], clients)
    assert h["client_cosine_to_mean_mean"] == pytest.approx(1.0)
    assert h["client_update_norm_std"] == pytest.approx(0.0)


def test_streaming_and_stacked_paths_agree():
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(5, 3)), rng.normal(size=4)]
    clients = [[a + rng.normal(size=a.shape) for a in x] for _ in range(6)]
    after = [a + 0.1 for a in x]
    stacked, n1 = update_health(x, after, clients, in_memory_limit=32)
    streamed, n2 = update_health(x, after, [lambda c=c: c for c in clients], in_memory_limit=2)
    np.testing.assert_allclose(n1, n2, rtol=1e-5)
    for key, value in stacked.items():
        assert streamed[key] == pytest.approx(value, rel=1e-4), key


def test_pooled_sums_give_the_mean_cosine_of_every_update():
    """The one-pass sums a pooled worker sends (one chunk or several, added in any
    grouping) give update_health's client_cosine_to_mean_mean; a zero update counts."""
    from server.health import pooled_cosine_mean
    from strategies.pooling import HealthSum

    rng = np.random.default_rng(1)
    x = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    drift = [rng.normal(size=a.shape) for a in x]

    def trained() -> list[np.ndarray]:
        return [
            (a + d + rng.normal(size=a.shape)).astype(np.float32)
            for a, d in zip(x, drift, strict=True)
        ]

    clients = [trained() for _ in range(7)] + [[a.copy() for a in x]]  # last: no change
    want, _ = update_health(x, None, clients)
    for chunks in ([8], [3, 3, 2], [1] * 8):
        total, start = HealthSum.zeros(x), 0
        for size in chunks:
            part = HealthSum.zeros(x)
            for y in clients[start : start + size]:
                u = [np.asarray(b, np.float64) - a for a, b in zip(x, y, strict=True)]
                part.add(u, float(np.sqrt(sum(np.vdot(d, d) for d in u))))
            start += size
            total.merge(part)
        assert total.clients == len(clients)
        got = pooled_cosine_mean(total.unit, total.update, total.clients)
        assert got == pytest.approx(want["client_cosine_to_mean_mean"], rel=1e-5)
    zero = HealthSum.zeros(x)
    zero.add([np.zeros(a.shape) for a in x], 0.0)
    assert pooled_cosine_mean(zero.unit, zero.update, 1) == 0.0  # as update_health: mean 0
