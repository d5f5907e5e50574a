"""Keras model registry: builders keyed by lowercase paper names, shapes follow the data."""

from __future__ import annotations

from collections.abc import Callable

from learning.errors import ConfigError


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


MODELS: dict[str, Callable] = {
    "cnn": build_cnn,
    "lenet": build_lenet,
    "mlp": build_mlp,
    "small-cnn": build_small_cnn,
}


def check_model_name(name: str) -> None:
    """Fail early, before any TensorFlow import, on a model name we do not know."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int):
    """Build (not compile) the named model for images of `input_shape`."""
    check_model_name(name)
    return MODELS[name](tuple(input_shape), int(num_classes))
