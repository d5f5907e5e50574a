"""EWC's empirical diagonal Fisher (Kirkpatrick et al. 2017), compiled once per trainer."""

from __future__ import annotations

import numpy as np


def fisher_diagonal(trainer, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray):
    """The mean over examples of the squared gradient of -log p(y|x) at `weights`, one
    example at a time; traced once per process (the caller bounds len(x))."""
    tf = trainer.tf
    if trainer._fisher_fn is None:
        variables = trainer._vars

        def fisher(xs, ys):
            acc = [tf.zeros_like(v) for v in variables]
            n = tf.shape(xs)[0]
            for i in tf.range(n):
                with tf.GradientTape() as tape:
                    p = trainer.model(xs[i : i + 1], training=False)
                    nll = -tf.math.log(tf.gather(p[0], ys[i]) + 1e-7)
                g = tape.gradient(nll, variables)
                acc = [a + tf.square(gi) for a, gi in zip(acc, g, strict=True)]
            return [a / tf.cast(tf.maximum(n, 1), tf.float32) for a in acc]

        trainer._fisher_fn = tf.function(fisher, input_signature=trainer._spec)
    trainer.set_weights(weights)
    if len(y) == 0:
        return [np.zeros_like(np.asarray(v)) for v in trainer._vars]
    return [np.asarray(f) for f in trainer._fisher_fn(x.astype(np.float32), y.astype(np.int64))]
