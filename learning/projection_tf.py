"""The compiled side of FOT's projection (learning/projection.py holds the math and its
NumPy reference): projector variables of fixed shape (d+1, d+1) per dense layer, so a
new basis is an assignment and never a retrace, and the projection of a step's
gradients before the optimiser sees them."""

from __future__ import annotations

import numpy as np


class Projectors:
    """One (d+1, d+1) variable per dense layer of a model, made on first use."""

    def __init__(self, tf, shapes: list[tuple[int, ...]]):
        from learning.projection import layer_pairs

        self.tf = tf
        self.pairs = layer_pairs(shapes)
        self.vars = [tf.Variable(tf.eye(shapes[k][0] + 1), trainable=False) for k, _ in self.pairs]

    def assign(self, projectors: list[np.ndarray]) -> None:
        for v, p in zip(self.vars, projectors, strict=True):
            v.assign(p)

    def apply(self, grads: list) -> list:
        """Gradients with every dense layer's [dW; db] replaced by P [dW; db]."""
        tf, out = self.tf, list(grads)
        for (k, b), p in zip(self.pairs, self.vars, strict=True):
            g = out[k]
            db = tf.zeros([1, tf.shape(g)[1]]) if b is None else tf.reshape(out[b], [1, -1])
            projected = tf.matmul(p, tf.concat([g, db], axis=0))
            out[k] = projected[:-1]
            if b is not None:
                out[b] = projected[-1]
        return out
