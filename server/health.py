"""Model-health numbers for one round: how big and how aligned the client updates were.

Drift shows up as a falling cosine similarity of client updates to their mean; an
attacker as one huge norm or a negative cosine; a broken client as NaN/Inf counts.
Pure NumPy over flattened updates (client weights minus the global weights).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def flat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])


def update_health(
    global_before: list[np.ndarray],
    global_after: list[np.ndarray] | None,
    client_weights: Sequence[Callable[[], list[np.ndarray]]] | Sequence[list[np.ndarray]],
    in_memory_limit: int = 32,
) -> tuple[dict[str, Any], np.ndarray]:
    """(scalars for metrics.jsonl, per-client update norms for histograms).

    `client_weights` items may be arrays or zero-argument loaders of them. Up to
    `in_memory_limit` clients the updates are held once (BLAS dot products give the
    norms and cosines without temporaries); beyond that two streaming passes keep one
    update in memory at a time.
    """
    x = flat(global_before)
    out: dict[str, Any] = {}
    if global_after is not None:
        out["global_update_norm"] = float(np.linalg.norm(flat(global_after) - x))

    def update(item) -> tuple[np.ndarray, int]:
        u = flat(item() if callable(item) else item) - x
        bad = ~np.isfinite(u)
        if bad.any():
            u[bad] = 0.0
        return u, int(bad.sum())

    if not client_weights:
        out["nonfinite_values"] = 0
        return out, np.zeros(0)
    if len(client_weights) <= in_memory_limit:
        pairs = [update(item) for item in client_weights]
        nonfinite = sum(b for _, b in pairs)
        norms = np.sqrt([float(u @ u) for u, _ in pairs])  # BLAS dots: no temporaries
        mean = pairs[0][0].copy()
        for u, _ in pairs[1:]:
            mean += u
        mean /= len(pairs)
        dots = np.array([float(u @ mean) for u, _ in pairs])
    else:
        norms_l, total, nonfinite = [], np.zeros_like(x, dtype=np.float64), 0
        for item in client_weights:
            u, bad = update(item)
            nonfinite += bad
            norms_l.append(float(np.sqrt(u @ u)))
            total += u
        norms = np.array(norms_l)
        mean = (total / len(norms)).astype(np.float32)
        dots = np.array([float(update(item)[0] @ mean) for item in client_weights])
    mean_norm = float(np.linalg.norm(mean))
    ok = (norms > 0) & (mean_norm > 0)
    cos = np.where(ok, dots / np.where(ok, norms * mean_norm, 1.0), 0.0)
    out.update(
        nonfinite_values=int(nonfinite),
        client_update_norm_mean=float(norms.mean()),
        client_update_norm_std=float(norms.std()),
        client_update_norm_max=float(norms.max()),
        client_cosine_to_mean_mean=float(cos.mean()),
        client_cosine_to_mean_min=float(cos.min()),
    )
    return out, norms


def pooled_cosine_mean(
    unit_sum: list[np.ndarray], update_sum: list[np.ndarray], clients: int
) -> float:
    """`client_cosine_to_mean_mean` from one-pass sums over the same `clients` updates
    (strategies/pooling.py HealthSum): with S = sum u_i/||u_i|| (zero updates add nothing)
    and m = sum u_i / n, mean_i cos(u_i, m) = <S, m> / (n ||m||); as above, a zero update
    or a zero mean counts as cosine 0. The minimum has no such statistic: it needs every
    update against the final mean, and a pooled round keeps no update."""
    m = _flat64(update_sum) / clients
    mean_norm = float(np.linalg.norm(m))
    if mean_norm == 0:
        return 0.0
    return float(_flat64(unit_sum) @ m) / (clients * mean_norm)


def _flat64(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
