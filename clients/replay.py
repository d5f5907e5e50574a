"""A bounded reservoir of past examples (Vitter's algorithm R), as pure NumPy.

After a stream of `seen` examples every one of them is in the buffer with probability
capacity / seen, whatever the order they came in; the buffer never holds more than
`capacity`. The client keeps it in its on-disk state; it never leaves the client.
"""

from __future__ import annotations

import numpy as np


def reservoir_add(
    buf_x: np.ndarray,
    buf_y: np.ndarray,
    seen: int,
    x_new: np.ndarray,
    y_new: np.ndarray,
    capacity: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stream (x_new, y_new) through the reservoir; returns (buf_x, buf_y, seen) as new arrays.

    `buf_x` (M, ...) and `buf_y` (M,) hold M <= capacity examples drawn from the `seen`
    streamed so far. The inputs are not modified.
    """
    if capacity < 0:
        raise ValueError(f"reservoir capacity must be >= 0, got {capacity}")
    xs = list(buf_x[:capacity])
    ys = list(buf_y[:capacity])
    for k in range(len(y_new)):
        count = seen + k  # examples streamed before this one
        if len(ys) < capacity:
            xs.append(x_new[k])
            ys.append(y_new[k])
        else:
            j = int(rng.integers(0, count + 1))
            if j < capacity:
                xs[j] = x_new[k]
                ys[j] = y_new[k]
    shape = (0, *x_new.shape[1:]) if not xs else None
    out_x = np.stack(xs) if xs else np.zeros(shape, dtype=x_new.dtype)
    out_y = np.asarray(ys, dtype=y_new.dtype) if ys else np.zeros((0,), dtype=y_new.dtype)
    return out_x, out_y, seen + len(y_new)
