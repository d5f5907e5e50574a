"""Model registry: output shapes follow the data; unknown names are config errors."""

from __future__ import annotations

import numpy as np
import pytest

from learning.errors import ConfigError
from learning.models import MODELS, build_model

pytestmark = pytest.mark.tf


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(("shape", "classes"), [((28, 28, 1), 10), ((32, 32, 3), 7)])
def test_output_shape_follows_data(name, shape, classes):
    model = build_model(name, shape, classes)
    out = np.asarray(model(np.zeros((3, *shape), np.float32)))
    assert out.shape == (3, classes)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_is_mcmahan_architecture():
    model = build_model("cnn", (28, 28, 1), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert [model.layers[i].filters for i in (0, 2)] == [32, 64]
    assert model.layers[5].units == 512


def test_unknown_model():
    with pytest.raises(ConfigError, match="unknown model 'vgg'"):
        build_model("vgg", (28, 28, 1), 10)
