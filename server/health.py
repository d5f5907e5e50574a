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
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def update_health(
    global_before: list[np.ndarray],
    global_after: list[np.ndarray],
    client_weights: Sequence[Callable[[], list[np.ndarray]]] | Sequence[list[np.ndarray]],
) -> tuple[dict[str, Any], np.ndarray]:
    """(scalars for metrics.jsonl, per-client update norms for histograms).

    `client_weights` items may be arrays or zero-argument loaders of them; two passes
    are made (norms and mean, then cosines) so at most one client's update is held
    besides the running mean, which keeps 100-client rounds cheap in memory.
    """
    x = flat(global_before)
    out: dict[str, Any] = {"global_update_norm": float(np.linalg.norm(flat(global_after) - x))}

    def update(item) -> tuple[np.ndarray, int]:
        u = flat(item() if callable(item) else item) - x
        bad = ~np.isfinite(u)
        return np.where(bad, 0.0, u), int(bad.sum())

    norms, total, nonfinite = [], np.zeros_like(x), 0
    for item in client_weights:
        u, bad = update(item)
        nonfinite += bad
        norms.append(float(np.linalg.norm(u)))
        total += u
    out["nonfinite_values"] = nonfinite
    if not norms:
        return out, np.zeros(0)
    mean = total / len(norms)
    mean_norm = float(np.linalg.norm(mean))
    cos = []
    for item, n in zip(client_weights, norms, strict=True):
        u, _ = update(item)
        cos.append(float(u @ mean) / (n * mean_norm) if n > 0 and mean_norm > 0 else 0.0)
    norms_arr, cos_arr = np.array(norms), np.array(cos)
    out.update(
        client_update_norm_mean=float(norms_arr.mean()),
        client_update_norm_std=float(norms_arr.std()),
        client_update_norm_max=float(norms_arr.max()),
        client_cosine_to_mean_mean=float(cos_arr.mean()),
        client_cosine_to_mean_min=float(cos_arr.min()),
    )
    return out, norms_arr
