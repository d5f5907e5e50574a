"""Each dense layer's inputs on a batch (FOT's activation statistics), from one Keras
function built per trainer and reused."""

from __future__ import annotations

import numpy as np


def layer_inputs(trainer, weights: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """[(n, d_l)] inputs of every layer with a 2-D kernel, in model order, at `weights`."""
    fn = getattr(trainer, "_inputs_fn", None)
    if fn is None:
        import keras

        model = trainer.model
        dense = [layer for layer in model.layers if any(len(w.shape) == 2 for w in layer.weights)]
        probe = keras.Model(model.inputs[0], [layer.input for layer in dense])
        fn = trainer.tf.function(lambda xs: probe(xs, training=False))
        trainer._inputs_fn = fn
    trainer.set_weights(weights)
    outs = [fn(x[s : s + 500]) for s in range(0, len(x), 500)]
    if not outs:
        return []
    return [
        np.concatenate([np.asarray(o[i]).reshape(len(np.asarray(o[i])), -1) for o in outs])
        for i in range(len(outs[0]))
    ]
