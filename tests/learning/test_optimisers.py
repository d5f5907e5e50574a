"""The hand-written optimisers in the compiled train step against Keras's own.

Full-batch epochs make every step see the same batch (shuffled as the trainer shuffles
it), so N epochs of our step are N steps of `keras.optimizers` on that batch.
SGD with momentum matches Keras exactly (Keras keeps m = mu m - lr g; ours m = mu m + g,
w -= lr m: the same sequence). Adam follows Kingma & Ba's Algorithm 1,
w -= lr m_hat / (sqrt(v_hat) + eps); Keras implements the paper's "efficient" form
(Sec. 2), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), w -= lr_t m / (sqrt(v) + eps), which
equals Algorithm 1 with eps_t = eps sqrt(1 - b2^t): Keras with epsilon = eps * sqrt(1 -
b2^t) per step is Algorithm 1 exactly, and that is what the reference below runs. We
keep Algorithm 1 (the paper's stated rule); the two differ only for |g| near eps.
"""

from __future__ import annotations

import numpy as np
import pytest

from learning.training import LocalTrainConfig, get_trainer
from learning.warm_start import initial_weights

pytestmark = pytest.mark.tf

STEPS = 5


def _batch():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 24).astype(np.int64)
    x = rng.normal(0, 1.0, (24, 8, 8, 1)).astype(np.float32)
    return x, y


def _keras_steps(weights, x, y, make_optimizer, steps: int):
    import keras
    import tensorflow as tf

    from learning.models import build_model

    model = build_model("mlp", (8, 8, 1), 3)
    model.set_weights(weights)
    rng = np.random.default_rng(0)  # the trainer's shuffle, so float sums match too
    for t in range(1, steps + 1):
        opt = make_optimizer(t)
        order = rng.permutation(len(y))
        with tf.GradientTape() as tape:
            probs = model(x[order], training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[order], probs))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return [np.asarray(w) for w in model.get_weights()]


def _ours(cfg: LocalTrainConfig):
    trainer = get_trainer("mlp", (8, 8, 1), 3)
    w0 = initial_weights("mlp", (8, 8, 1), 3, seed=11)
    x, y = _batch()
    return w0, x, y, trainer.train(w0, x, y, cfg, np.random.default_rng(0)).weights


def _close(ours, ref, w0):
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(ours, w0, strict=True))  # it moved
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_sgd_with_momentum_matches_keras():
    import keras

    cfg = LocalTrainConfig(epochs=STEPS, batch_size=24, lr=0.1, momentum=0.9)
    w0, x, y, ours = _ours(cfg)
    opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    _close(ours, _keras_steps(w0, x, y, lambda t: opt, STEPS), w0)


def test_adam_is_kingma_and_ba_algorithm_1():
    import keras

    cfg = LocalTrainConfig(epochs=STEPS, batch_size=24, lr=0.001, optimizer="adam")
    w0, x, y, ours = _ours(cfg)
    opt = keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    plain = _keras_steps(w0, x, y, lambda t: opt, STEPS)  # Keras's eps-hat convention

    def algorithm_1(t: int):  # the same state, epsilon rescaled to Algorithm 1's
        opt.epsilon = 1e-7 * np.sqrt(1 - 0.999**t)
        return opt

    opt = keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    _close(ours, _keras_steps(w0, x, y, algorithm_1, STEPS), w0)
    # Keras's own convention differs only where |g| is near eps / sqrt(1 - b2^t) (nearly
    # dead units), by at most the STEPS steps of size lr that Adam's normalisation allows.
    gap = max(np.abs(a - b).max() for a, b in zip(ours, plain, strict=True))
    assert 0 < gap <= STEPS * 0.001 * 1.01
