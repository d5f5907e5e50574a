"""Export a global model as a standalone `.keras` file: raw images in, probabilities out.

The saved model is the configured architecture with the given weights behind its input
preprocessing (uint8 pixels -> float32 / 255, as `training.to_float_images` does), so
`keras.models.load_model(path)` alone serves it: no perennial import, no custom layers.
Loading it back as `model =` or `init-weights =` unwraps it (models.EXPORT_NAME).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from learning.models import EXPORT_NAME, build_model


def export_model(
    model_name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: list[np.ndarray],
    path: str | Path,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write `weights` of `model_name` (built with the [plugin] `settings`) wrapped with
    its preprocessing to `path` (atomic)."""
    from learning.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    inner = build_model(model_name, tuple(input_shape), num_classes, settings)
    inner.set_weights([np.asarray(w) for w in weights])
    raw = keras.Input(shape=tuple(input_shape), dtype="uint8", name="images")
    scaled = keras.layers.Rescaling(1.0 / 255.0, name="to_float_images")(raw)
    model = keras.Model(raw, inner(scaled), name=EXPORT_NAME)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.keras")  # Keras wants the suffix
    model.save(tmp)
    os.replace(tmp, out)
    return out
