"""TARGET's data-free replay on the server (Zhang et al., ICCV 2023), as in data-free
knowledge distillation (DeepInversion, Yin et al. 2020; DAFL, Chen et al. 2019).

At a task change the server trains a small generator G(z) against the frozen global
model (the teacher) so that its images
- match the teacher's batch-norm statistics: for every BN layer l, the batch mean and
  variance of the layer's input on G(z) should be its running mean and variance
  (`bn_loss`: sum_l ||mu_l - m_l||_2 + ||var_l - v_l||_2);
- are confidently the classes they were drawn for: cross-entropy of the teacher's
  output to labels sampled from the classes seen so far (`class_loss`);
- are diverse: a mode-seeking term (Mao et al. 2019) that rewards different images for
  different latents (`diversity_loss`: 1 / (mean|G(z_a) - G(z_b)| / mean|z_a - z_b| + eps)).
Clients then distil the teacher's tempered outputs on the synthetic images
(`distillation_loss`, the same form as LwF's) while they learn the new task.
"""

from __future__ import annotations

import numpy as np

LATENT = 64
BN_WEIGHT = 1.0
DIVERSITY_WEIGHT = 1.0
GEN_LR = 1e-3
GEN_BATCH = 128
TARGET_SYNTHETIC = "target-synthetic"  # the records' name in a train message


def _tf():
    from learning.tf_import import import_tensorflow

    return import_tensorflow()


def build_generator(input_shape: tuple[int, int, int]):
    """z (LATENT,) -> image in [0, 1] of `input_shape` (H and W divisible by 4)."""
    import keras

    h, w, c = input_shape
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(LATENT,)),
            layers.Dense((h // 4) * (w // 4) * 32),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Reshape((h // 4, w // 4, 32)),
            layers.UpSampling2D(2),
            layers.Conv2D(16, 3, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.UpSampling2D(2),
            layers.Conv2D(c, 3, padding="same", activation="sigmoid"),
        ],
        name="target_generator",
    )


def bn_loss(stats: list, running: list):
    """sum_l ||mean_l - m_l||_2 + ||var_l - v_l||_2; stats: per BN layer its input batch
    (N, ..., C); running: per layer (moving mean (C,), moving variance (C,))."""
    tf = _tf()
    total = tf.constant(0.0)
    for a, (m, v) in zip(stats, running, strict=True):
        axes = list(range(len(a.shape) - 1))
        mean, var = tf.nn.moments(a, axes=axes)
        total += tf.norm(mean - m) + tf.norm(var - v)
    return total


def class_loss(probs, labels):
    """Mean cross-entropy of the teacher's probabilities to the sampled labels."""
    tf = _tf()
    return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, probs))


def diversity_loss(images, z, eps: float = 1e-5):
    """Mode seeking: 1 / (mean|x_a - x_b| / mean|z_a - z_b| + eps) over the batch halves."""
    tf = _tf()
    half = tf.shape(z)[0] // 2
    dx = tf.reduce_mean(tf.abs(images[:half] - images[half : 2 * half]))
    dz = tf.reduce_mean(tf.abs(z[:half] - z[half : 2 * half]))
    return 1.0 / (dx / dz + eps)


def distillation_loss(teacher_soft, student_probs, temperature: float):
    """T^2 * CE(q, softmax(log p / T)), q the teacher's tempered outputs (as LwF)."""
    tf = _tf()
    log_s = tf.nn.log_softmax(tf.math.log(student_probs + 1e-7) / temperature, axis=1)
    return temperature**2 * -tf.reduce_mean(tf.reduce_sum(teacher_soft * log_s, axis=1))


def _bn_probe(model):
    """A function x -> ([BN inputs], probs) of `model`, and its BN layers' running stats."""
    import keras

    is_bn = lambda layer: isinstance(layer, keras.layers.BatchNormalization)  # noqa: E731
    bns = [layer for layer in model.layers if is_bn(layer)]
    if isinstance(model, keras.Sequential):  # a chain: rewire its layers (weights shared)
        x = inp = keras.Input(shape=model.input_shape[1:])
        taps = []
        for layer in model.layers:
            if is_bn(layer):
                taps.append(x)
            x = layer(x)
        probe = keras.Model(inp, [*taps, x])
    else:
        probe = keras.Model(model.inputs[0], [*(b.input for b in bns), *model.outputs])
    return probe, [(b.moving_mean, b.moving_variance) for b in bns]


def train_generator(
    teacher, input_shape: tuple[int, int, int], classes: np.ndarray, steps: int, rng
) -> tuple[object, list[float]]:
    """A generator trained `steps` Adam steps against the frozen `teacher` (a Keras model
    with batch norm); latents and labels drawn from `rng`. Returns it and its losses."""
    import keras

    tf = _tf()
    gen = build_generator(input_shape)
    # kernels He-normal from the run's stream (no global seed); 1-D arrays keep their
    # deterministic defaults (zero biases and betas, unit gammas and variances)
    gen.set_weights(
        [
            rng.normal(0.0, np.sqrt(2.0 / np.prod(w.shape[:-1])), w.shape).astype(np.float32)
            if w.ndim >= 2
            else w
            for w in gen.get_weights()
        ]
    )
    probe, running = _bn_probe(teacher)
    opt = keras.optimizers.Adam(GEN_LR)

    @tf.function
    def step(z, y):
        with tf.GradientTape() as tape:
            x = gen(z, training=True)
            *stats, probs = probe(x, training=False)
            loss = (
                class_loss(probs, y)
                + BN_WEIGHT * bn_loss(stats, running)
                + DIVERSITY_WEIGHT * diversity_loss(x, z)
            )
        grads = tape.gradient(loss, gen.trainable_variables)
        opt.apply_gradients(zip(grads, gen.trainable_variables, strict=True))
        return loss

    losses = []
    for _ in range(steps):
        z = rng.standard_normal((GEN_BATCH, LATENT)).astype(np.float32)
        y = rng.choice(classes, size=GEN_BATCH).astype(np.int64)
        losses.append(float(step(z, y)))
    return gen, losses


def synthesise(gen, count: int, rng) -> np.ndarray:
    """`count` float32 images from the generator (inference mode)."""
    z = rng.standard_normal((count, LATENT)).astype(np.float32)
    return np.asarray(gen(z, training=False), dtype=np.float32)
