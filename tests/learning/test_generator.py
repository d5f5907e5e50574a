"""TARGET's generator and distillation losses on tiny tensors, against NumPy written
from the definitions (DeepInversion's BN matching, mode seeking, Hinton's KD)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def tf():
    from learning.tf_import import import_tensorflow

    return import_tensorflow()


def test_bn_loss_is_the_distance_of_batch_moments_to_the_running_ones(tf):
    from learning.generator import bn_loss

    a = np.array([[[1.0, 2.0], [3.0, 6.0]], [[5.0, 2.0], [7.0, 6.0]]], np.float32)  # (2,2,2)
    m, v = np.array([4.0, 3.0], np.float32), np.array([5.0, 4.0], np.float32)
    flat = a.reshape(-1, 2)
    want = np.linalg.norm(flat.mean(0) - m) + np.linalg.norm(flat.var(0) - v)
    b = np.array([[0.0], [2.0]], np.float32)
    want += np.linalg.norm(b.mean(0) - 0.5) + np.linalg.norm(b.var(0) - 1.0)
    got = bn_loss(
        [tf.constant(a), tf.constant(b)], [(m, v), (np.float32([0.5]), np.float32([1.0]))]
    )
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(bn_loss([tf.constant(flat)], [(flat.mean(0), flat.var(0))])) == pytest.approx(0)


def test_class_and_distillation_losses_match_their_definitions(tf):
    from learning.generator import class_loss, distillation_loss

    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([0, 1])
    assert float(class_loss(tf.constant(p), tf.constant(y))) == pytest.approx(
        -(np.log(0.7) + np.log(0.1)) / 2, rel=1e-5
    )
    t = 2.0
    q = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], np.float32)
    z = np.log(p) / t
    log_s = z - np.log(np.exp(z).sum(1, keepdims=True))
    want = t * t * -(q * log_s).sum(1).mean()
    assert float(distillation_loss(tf.constant(q), tf.constant(p), t)) == pytest.approx(
        want, rel=1e-4
    )
    # the student that equals the teacher's tempered distribution minimises it
    assert float(distillation_loss(tf.constant(q), tf.constant(q), 1.0)) < float(
        distillation_loss(tf.constant(q), tf.constant(p), 1.0)
    )


def test_diversity_loss_rewards_different_images_for_different_latents(tf):
    from learning.generator import diversity_loss

    z = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]], np.float32)
    same = np.zeros((4, 2, 2, 1), np.float32)
    apart = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.0, 1.0, 0.5, 0.2)])
    dx, dz = np.abs(apart[:2] - apart[2:]).mean(), np.abs(z[:2] - z[2:]).mean()
    got = float(diversity_loss(tf.constant(apart), tf.constant(z)))
    assert got == pytest.approx(1 / (dx / dz + 1e-5), rel=1e-5)
    assert float(diversity_loss(tf.constant(same), tf.constant(z))) > got


def test_a_short_generator_training_lowers_its_loss_and_yields_images():
    from learning.generator import synthesise, train_generator
    from learning.streams import Tag, generator
    from learning.training import get_trainer
    from learning.warm_start import initial_weights

    trainer = get_trainer("mlp-bn", (28, 28, 1), 10)
    trainer.set_weights(initial_weights("mlp-bn", (28, 28, 1), 10, seed=1))
    rng = generator(0, Tag.GENERATOR_TRAIN, 0)
    gen, losses = train_generator(trainer.model, (28, 28, 1), np.array([0, 1]), 30, rng)
    assert np.all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    x = synthesise(gen, 6, rng)
    assert x.shape == (6, 28, 28, 1) and x.min() >= 0.0 and x.max() <= 1.0
