"""A user's own package, written outside the repo, for the plug-in tests: a model
builder, a dataset loader, a partitioner and strategies (one with server state), each
also in a form that reads the [plugin] settings, plus broken variants of each."""

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

        def wide(input_shape, num_classes, *, settings):
            # A hidden layer settings["width"] units wide: the [plugin] table decides.
            return keras.Sequential([
                keras.Input(shape=input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(int(settings.get("width", 4)), activation="relu"),
                keras.layers.Dense(num_classes, activation="softmax"),
            ])
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

        def sized(*, settings):
            # settings["examples"] training examples (default 240)
            x_train, y_train = _split(int(settings.get("examples", 240)), 0)
            x_test, y_test = _split(60, 1)
            return x_train, y_train, x_test, y_test
    """,
    "split.py": """
        import numpy as np

        def split(labels, num_clients, rng):
            order = rng.permutation(len(labels))
            return [np.sort(order[i::num_clients]) for i in range(num_clients)]

        def overlapping(labels, num_clients, rng):
            return [np.arange(len(labels)) for _ in range(num_clients)]

        def keep(labels, num_clients, rng, *, settings):
            # Like split, over only the first settings["keep"] examples of a shuffle.
            order = rng.permutation(len(labels))[: int(settings.get("keep", len(labels)))]
            return [np.sort(order[i::num_clients]) for i in range(num_clients)]
    """,
    "strategies.py": '''
        import numpy as np
        from flwr.app import ArrayRecord, MetricRecord
        from flwr.serverapp.strategy import FedAvg

        TWIST = np.float32(0.001)

        class MeanPlus(FedAvg):
            """Coordinate-wise mean of the replies, plus a small constant (the twist:
            [plugin] twist, else TWIST)."""

            def __init__(self, *, settings=None, **kwargs):
                super().__init__(**kwargs)
                self.twist = np.float32((settings or {}).get("twist", TWIST))

            def aggregate_train(self, server_round, replies):
                got = [m.content["arrays"].to_numpy_ndarrays() for m in replies if m.has_content()]
                if not got:
                    return None, None
                mean = [np.mean(np.stack(layer), axis=0) + self.twist for layer in zip(*got)]
                return ArrayRecord([a.astype(np.float32) for a in mean]), MetricRecord({})

        def factory(cfg):
            return MeanPlus(fraction_evaluate=0.0)

        def tuned(cfg, *, settings):
            return MeanPlus(fraction_evaluate=0.0, settings=settings)

        class ServerMomentum(FedAvg):
            """Server momentum on FedAvg's mean (FedAvgM): v = beta * v + (x - mean),
            x = x - server-lr * v. The velocity is its state, held as arrays and named by
            STATE (it is None until the first round), so checkpoints keep it."""

            STATE = "velocity"

            def __init__(self, *, settings, **kwargs):
                super().__init__(**kwargs)
                self.beta = float(settings.get("beta", 0.9))
                self.server_lr = float(settings.get("server-lr", 1.0))
                self._velocity = None
                self._sent = None  # the global model configure_train sent

            def configure_train(self, server_round, arrays, config, grid):
                self._sent = arrays.to_numpy_ndarrays()
                return super().configure_train(server_round, arrays, config, grid)

            def aggregate_train(self, server_round, replies):
                mean, metrics = super().aggregate_train(server_round, replies)
                if mean is None:
                    return None, None
                delta = [x - m for x, m in zip(self._sent, mean.to_numpy_ndarrays())]
                if self._velocity is None:
                    self._velocity = [np.zeros_like(d) for d in delta]
                self._velocity = [self.beta * v + d for v, d in zip(self._velocity, delta)]
                new = [x - self.server_lr * v for x, v in zip(self._sent, self._velocity)]
                return ArrayRecord([a.astype(x.dtype) for a, x in zip(new, self._sent)]), metrics

        class NotAStrategy:
            pass

        class NeedsMore(FedAvg):
            def __init__(self, extra, **kwargs):
                super().__init__(**kwargs)

        def returns_none(cfg):
            return None

        class NeedsSetting(FedAvg):
            def __init__(self, *, settings, **kwargs):
                super().__init__(**kwargs)
                self.width = settings["width"]  # KeyError without [plugin] width
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
