"""Orthogonal projection for federated continual learning (FOT, Bakman et al., ICLR 2024;
the subspace rule of GPM, Saha et al., ICLR 2021), as pure NumPy.

A dense layer y = x W + b is a linear map of the augmented input [x, 1] by the stacked
matrix [W; b] of shape (d+1, out). If an update dW changes only directions orthogonal to
every old input, the old outputs do not change: for a basis B (d+1, k) of the old inputs'
span, the projected update (I - B B^T) [dW; db] leaves [x, 1] [W; b] unchanged for every
x in that span. Per layer:

- a client sends the Gram matrix G = A^T A / n of its augmented inputs A (n, d+1) on
  the finished task (`augmented_gram`): (d+1)^2 numbers, independent of n;
- the server averages the clients' G and grows the basis as GPM does (`grow_basis`):
  keep the old basis, and add the top eigenvectors of the residual Gram
  (I - B B^T) G (I - B B^T) until the basis captures `energy` of G's total energy;
- clients project every gradient of a new task onto the orthogonal complement
  (`project`): [dW; db] <- P [dW; db], P = I - B B^T (`projector`).

Only dense layers (2-D kernels, each with an optional bias after it) are handled;
`check_dense_only` refuses other models in one line.
"""

from __future__ import annotations

import numpy as np

from learning.errors import ConfigError

# Message records: the server's basis (to clients) and a client's Gram report (to the
# server), each keyed by the kernel's key in the model's ArrayRecord ("0", "2", ...).
FOT_BASIS = "fot-basis"
FOT_GRAM = "fot-gram"


def layer_pairs(shapes: list[tuple[int, ...]]) -> list[tuple[int, int | None]]:
    """(kernel index, bias index or None) of each dense layer in a weights list: a 2-D
    array is a kernel; a 1-D array right after it, as long as its output, is its bias."""
    pairs = []
    for i, s in enumerate(shapes):
        if len(s) == 2:
            nxt = shapes[i + 1] if i + 1 < len(shapes) else None
            bias = i + 1 if nxt is not None and tuple(nxt) == (s[1],) else None
            pairs.append((i, bias))
    return pairs


def check_dense_only(shapes: list[tuple[int, ...]], model: str) -> None:
    """One line unless every array is a dense kernel or its bias (no conv, no BN)."""
    covered = {i for k, b in layer_pairs(shapes) for i in (k, b) if i is not None}
    if covered != set(range(len(shapes))):
        raise ConfigError(
            f"cl-method 'fot' projects dense layers only, but model {model!r} has other "
            'weights (convolutions or batch norm); use model = "mlp"'
        )


def kernel_keys(shapes: list[tuple[int, ...]]) -> list[str]:
    """Keys of the dense kernels in a model's ArrayRecord (its arrays are "0", "1", ...)."""
    return [str(k) for k, _ in layer_pairs(shapes)]


def gram_side(kernel_shape: tuple[int, ...]) -> int:
    """Side of the augmented Gram matrix of a kernel's layer: inputs + 1."""
    return int(kernel_shape[0]) + 1


def augmented_gram(inputs: np.ndarray) -> np.ndarray:
    """G = [x, 1]^T [x, 1] / n (float64) of a layer's inputs (n, d); zeros if n = 0."""
    x = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    return a.T @ a / max(1, len(a))


def grow_basis(basis: np.ndarray | None, gram: np.ndarray, energy: float) -> np.ndarray:
    """The old orthonormal basis (d, k) plus the fewest residual eigenvectors of `gram`
    (d, d) that make the basis capture at least `energy` of gram's total energy."""
    d = gram.shape[0]
    b = np.zeros((d, 0)) if basis is None else np.asarray(basis, dtype=np.float64)
    total = float(np.trace(gram))
    if total <= 0 or b.shape[1] >= d:
        return b.copy()
    p = np.eye(d) - b @ b.T
    residual = p @ gram @ p
    captured = total - float(np.trace(residual))
    vals, vecs = np.linalg.eigh((residual + residual.T) / 2)
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    if captured / total >= energy:
        return b.copy()
    need = energy * total - captured
    k = int(np.searchsorted(np.cumsum(vals), need - 1e-12 * total) + 1)
    new = vecs[:, : min(k, d - b.shape[1])]
    q, _ = np.linalg.qr(np.concatenate([b, p @ new], axis=1))  # re-orthonormalised
    return q[:, : b.shape[1] + new.shape[1]]


def projector(basis: np.ndarray) -> np.ndarray:
    """P = I - B B^T (float32) for an orthonormal basis B (d, k)."""
    b = np.asarray(basis, dtype=np.float64)
    return (np.eye(b.shape[0]) - b @ b.T).astype(np.float32)


def project(
    kernel_grad: np.ndarray, bias_grad: np.ndarray | None, proj: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """[dW; db] <- P [dW; db]: the update's part orthogonal to the basis (reference for
    the compiled version in learning/projection_tf.py)."""
    out = kernel_grad.shape[1]
    db = np.zeros((1, out)) if bias_grad is None else np.reshape(bias_grad, (1, out))
    g = proj @ np.concatenate([kernel_grad, db], axis=0)
    return g[:-1], (None if bias_grad is None else g[-1])
