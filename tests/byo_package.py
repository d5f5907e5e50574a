"""A user's own package, written outside the repo, for the plug-in tests: a model
builder, a dataset loader, a partitioner and a strategy, plus broken variants of each."""

from __future__ import annotations

import textwrap
from pathlib import Path

SOURCE = {
    "models.py": """
        import keras

        def build(input_shape, num_classes):
            return keras.Sequential([
                keras.Input(shape=input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(num_classes, activation="softmax"),
            ])

        def logits(input_shape, num_classes):
            return keras.Sequential([
                keras.Input(shape=input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(num_classes),
            ])

        def one_arg(input_shape):
            return None
    """,
    "data.py": """
        import numpy as np

        def _split(n, offset):
            y = (np.arange(n) + offset) % 3
            x = np.full((n, 8, 8), 20, dtype=np.uint8)
            for i, c in enumerate(y):
                x[i, 2 * c : 2 * c + 3, :] = 200 + (i % 50)
            return x, y.astype(np.int64)

        def load():
            x_train, y_train = _split(240, 0)
            x_test, y_test = _split(60, 1)
            return x_train, y_train, x_test, y_test

        def flat_images():
            x_train, y_train, x_test, y_test = load()
            return x_train.reshape(len(x_train), -1), y_train, x_test, y_test

        def floats():
            x_train, y_train, x_test, y_test = load()
            return x_train / 255.0, y_train, x_test / 255.0, y_test
    """,
    "split.py": """
        import numpy as np

        def split(labels, num_clients, rng):
            order = rng.permutation(len(labels))
            return [np.sort(order[i::num_clients]) for i in range(num_clients)]

        def overlapping(labels, num_clients, rng):
            return [np.arange(len(labels)) for _ in range(num_clients)]
    """,
    "strategies.py": '''
        import numpy as np
        from flwr.app import ArrayRecord, MetricRecord
        from flwr.serverapp.strategy import FedAvg

        TWIST = np.float32(0.001)

        class MeanPlus(FedAvg):
            """Coordinate-wise mean of the replies, plus a small constant (the twist)."""

            def aggregate_train(self, server_round, replies):
                got = [m.content["arrays"].to_numpy_ndarrays() for m in replies if m.has_content()]
                if not got:
                    return None, None
                mean = [np.mean(np.stack(layer), axis=0) + TWIST for layer in zip(*got)]
                return ArrayRecord([a.astype(np.float32) for a in mean]), MetricRecord({})

        def factory(cfg):
            return MeanPlus(fraction_evaluate=0.0)

        class NotAStrategy:
            pass

        class NeedsMore(FedAvg):
            def __init__(self, extra, **kwargs):
                super().__init__(**kwargs)

        def returns_none(cfg):
            return None
    ''',
}


def write_package(root: Path, name: str = "byo_pkg") -> Path:
    """Write the package under `root` (add `root` to sys.path / PYTHONPATH to use it)."""
    pkg = root / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for file, text in SOURCE.items():
        (pkg / file).write_text(textwrap.dedent(text))
    return root
