"""Keras model registry: builders keyed by lowercase paper names, shapes follow the data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from learning.errors import ConfigError
from learning.plugins import call, is_keras_file, is_plugin, plugin_error


def _keras():  # imported lazily: the server's config checks must not pay for TensorFlow
    from learning.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def build_cnn(input_shape: tuple[int, int, int], num_classes: int):
    """McMahan et al. 2017 CNN: conv5x5(32)-pool-conv5x5(64)-pool-dense(512)-softmax."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn",
    )


def build_lenet(input_shape: tuple[int, int, int], num_classes: int):
    """NIID-Bench's small CNN: conv5x5(6)-pool-conv5x5(16)-pool-dense(120)-dense(84)."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(6, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="lenet",
    )


def build_mlp(input_shape: tuple[int, int, int], num_classes: int):
    """McMahan et al. 2017 '2NN': two hidden layers of 200 ReLU units."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),
            layers.Dense(200, activation="relu"),
            layers.Dense(200, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="mlp",
    )


def build_small_cnn(input_shape: tuple[int, int, int], num_classes: int):
    """conv3x3(8)-pool-conv3x3(16)-pool-softmax, about 5,000 weights on 28x28 inputs.

    For differential privacy: the noise a DP mean needs grows with the square root of
    the number of weights while each weight's share of a clipped update shrinks, so
    a small model keeps the most signal per coordinate (see docs/privacy.md).
    """
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="small_cnn",
    )


def build_cnn_bn(input_shape: tuple[int, int, int], num_classes: int):
    """The `cnn` with batch norm after each convolution and the hidden dense layer, for
    FedBN (Li et al. 2021), whose BN layers stay on the clients."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 5, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 5, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn_bn",
    )


def build_mlp_bn(input_shape: tuple[int, int, int], num_classes: int):
    """The 2NN `mlp` with batch norm after each hidden layer: a batch-norm model small
    enough for 2 CPU cores, for TARGET's generator (it matches BN statistics)."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),
            layers.Dense(200, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(200, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="mlp_bn",
    )


MODELS: dict[str, Callable] = {
    "cnn": build_cnn,
    "lenet": build_lenet,
    "mlp": build_mlp,
    "small-cnn": build_small_cnn,
    "cnn-bn": build_cnn_bn,
    "mlp-bn": build_mlp_bn,
}


# The name an exported model's wrapper carries (learning/export.py): loading one back as
# a model or warm start takes the inner model, which expects float images in [0, 1].
EXPORT_NAME = "perennial_export"


def check_model_name(name: str) -> None:
    """Fail early, before any TensorFlow import, on a model name we do not know."""
    if name not in MODELS and not is_plugin(name):
        raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    settings: Mapping[str, Any] | None = None,
):
    """Build (not compile) the named model, plug-in or saved Keras model for images of
    `input_shape`; a plug-in's output is checked (shape, softmax) before it is used. A
    builder that asks for `settings` gets the [plugin] table (learning/plugins.py)."""
    check_model_name(name)
    shape, k = tuple(int(s) for s in input_shape), int(num_classes)
    if not is_plugin(name):
        return MODELS[name](shape, k)
    if is_keras_file(name):
        model = load_keras_model(name, "model")
    else:
        model = call("model", name, shape, k, settings=settings)
        if not isinstance(model, _keras().Model):
            raise plugin_error("model", name, f"returned {type(model).__name__}, not a keras.Model")
    check_softmax(model, shape, k, name)
    return model


def load_keras_model(path: str, key: str):
    """A saved Keras model (an exported perennial model is unwrapped to its inner model)."""
    keras = _keras()
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # not a Keras file, or custom layers it cannot rebuild
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{key} {path!r}: cannot load it as a Keras model ({first})") from None
    if model.name == EXPORT_NAME:
        model = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    return model


def check_softmax(model, input_shape: tuple[int, ...], num_classes: int, name: str) -> None:
    """The trainer and LwF expect probabilities: probe a batch and refuse logits."""
    import numpy as np

    size = 4 * int(np.prod(input_shape))  # fixed pseudo-pixels in [0, 1], no random stream
    probe = ((np.arange(size) * 7919 % 251) / 250.0).astype(np.float32).reshape(4, *input_shape)
    try:
        out = np.asarray(model(probe, training=False))
    except Exception as exc:  # wrong input shape, mostly
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise plugin_error(
            "model", name, f"fails on a batch of shape {probe.shape} ({first[:200]})"
        ) from None
    if out.shape != (4, num_classes):
        raise plugin_error(
            "model", name, f"outputs shape {out.shape[1:]} for {num_classes} classes"
        )
    if not np.all(np.isfinite(out)) or out.min() < 0 or np.abs(out.sum(1) - 1).max() > 1e-3:
        raise plugin_error(
            "model", name, "outputs are not probabilities (logits?); end it in a softmax"
        )
