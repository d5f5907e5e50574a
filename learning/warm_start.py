"""The initial global weights: drawn from a seed (`initial_weights`), a `.keras` model's
own, or, for a warm start, read from a file.

`init-weights` names a `.keras` model (an exported perennial model included), a weights
`.npz` (a perennial `checkpoint.npz`, or `np.savez(path, *model.get_weights())`), or a
run directory, whose `checkpoint.npz` (its last round) is used. The arrays must match the
configured model's weights one for one in shape, so a mismatch is refused before round 1.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from learning.errors import ConfigError
from learning.models import build_model

FORM = "a .keras model, a weights .npz, or a run directory holding checkpoint.npz"


def weights_file(path: str) -> Path:
    """The file `init-weights` reads (a run directory's checkpoint.npz); one line if none."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "checkpoint.npz"
    if not p.is_file() or p.suffix not in (".keras", ".npz"):
        raise ConfigError(f"init-weights {path!r}: no such file; expected {FORM}")
    return p


def read_weights(path: str) -> list[np.ndarray]:
    """The weight arrays stored at `path`, in the model's order."""
    p = weights_file(path)
    if p.suffix == ".keras":
        from learning.models import load_keras_model

        return [np.asarray(w) for w in load_keras_model(str(p), "init-weights").get_weights()]
    try:
        with np.load(p, allow_pickle=False) as data:
            if "meta" in data.files:  # a perennial checkpoint: w/0, w/1, ...
                n = json.loads(str(data["meta"]))["num_weights"]
                return [data[f"w/{i}"] for i in range(n)]
            return [data[k] for k in data.files]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"init-weights {path!r}: unreadable ({exc}); expected {FORM}") from None


def check_shapes(path: str, got: list[np.ndarray], want: list[np.ndarray], model: str) -> None:
    """Refuse weights that are not the model's, one line, naming the first mismatch."""
    if len(got) != len(want):
        raise ConfigError(
            f"init-weights {path!r} holds {len(got)} arrays but model {model!r} has "
            f"{len(want)}; warm-start from weights of the same model"
        )
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g.shape != w.shape:
            raise ConfigError(
                f"init-weights {path!r}: array {i} has shape {g.shape} but model {model!r} "
                f"needs {w.shape}; warm-start from weights of the same model"
            )


def warm_weights(path: str, model_weights: list[np.ndarray], model: str) -> list[np.ndarray]:
    """The stored weights, shape-checked and cast to the model's dtypes."""
    got = read_weights(path)
    check_shapes(path, got, model_weights, model)
    return [np.asarray(g, dtype=w.dtype) for g, w in zip(got, model_weights, strict=True)]


def initial_weights(
    model_name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int,
    init_weights: str = "",
    settings: Mapping[str, Any] | None = None,
) -> list[np.ndarray]:
    """Seeded initial global weights (Keras initialisers under a fixed seed), a `.keras`
    model's own weights, or, with `init_weights`, those stored there (warm start; it
    takes precedence over a `.keras` model's weights). `settings`: the [plugin] table."""
    from learning.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(int(seed))
    model = build_model(model_name, tuple(input_shape), num_classes, settings)
    weights = [np.asarray(w) for w in model.get_weights()]
    del model
    if init_weights:
        weights = warm_weights(init_weights, weights, model_name)
    return weights
