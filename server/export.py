"""The trained model out of a run: `model.keras` (final round) and `best.keras` (the best
evaluated round) in every run directory, and the model of a checkpointed round on demand
(`perennial export`).

The best round's weights are kept in memory as they are evaluated and mirrored in
`best.npz` (weights, round, accuracy), so a resumed run still exports the best round it
evaluated before the interruption.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from learning.config import ExperimentConfig, build_config
from learning.errors import ConfigError
from learning.export import export_model
from learning.federated_data import dataset_for
from server.pipeline.evaluate import CentralEvaluation
from server.run_dir import write_atomic

BEST = "best.npz"


class BestKeeper:
    """Wraps the central evaluation; remembers the weights of the best evaluated round."""

    def __init__(self, evaluate: CentralEvaluation, run_dir: Path) -> None:
        self.evaluate, self.run_dir = evaluate, Path(run_dir)
        self.pending: tuple[float, list[np.ndarray]] | None = None
        self.best: tuple[int, float, list[np.ndarray]] | None = _read_best(self.run_dir)

    def __call__(self, weights: list[np.ndarray]) -> tuple[float, float]:
        loss, acc = self.evaluate(weights)
        self.pending = (acc, [np.array(w, copy=True) for w in weights])
        return loss, acc

    def on_row(self, row: dict[str, Any]) -> None:
        """A recorded row: its round becomes the best if it beats every earlier one
        (ties keep the earlier round, as the summary's best_round does)."""
        acc = row.get("accuracy")
        if acc is None or self.pending is None:
            return
        if self.best is None or acc > self.best[1]:
            self.best = (int(row["round"]), float(acc), self.pending[1])
            arrays = {f"w/{i}": w for i, w in enumerate(self.best[2])}
            meta = {"round": self.best[0], "accuracy": self.best[1]}
            buf = io.BytesIO()
            np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
            write_atomic(self.run_dir / BEST, buf.getvalue())
        self.pending = None


def _read_best(run_dir: Path) -> tuple[int, float, list[np.ndarray]] | None:
    path = run_dir / BEST
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        n = sum(1 for k in data.files if k.startswith("w/"))
        return meta["round"], meta["accuracy"], [data[f"w/{i}"] for i in range(n)]


def write_exports(
    cfg: ExperimentConfig, run_dir: Path, final: list[np.ndarray], keeper: BestKeeper
) -> None:
    """`model.keras` from the final weights and `best.keras` from the best round's."""
    ds = dataset_for(cfg)
    shape, k = ds.input_shape, ds.num_classes
    export_model(cfg.train.model, shape, k, final, Path(run_dir) / "model.keras", cfg.plugin)
    best = keeper.best[2] if keeper.best is not None else final
    export_model(cfg.train.model, shape, k, best, Path(run_dir) / "best.keras", cfg.plugin)


def export_round(run_dir: str | Path, rnd: int | None, out: str | Path | None) -> Path:
    """Write the model of a stored round of `run_dir`: the checkpointed (last) round, or
    the best evaluated round (best.npz); any other round was not kept."""
    from server.checkpoint import load_checkpoint

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise ConfigError(f"{str(run)!r} is not a run directory (no config.toml)")
    cfg = build_config(run / "config.toml")
    ckpt = load_checkpoint(run)
    best = _read_best(run)
    if rnd is None or rnd == ckpt.round:
        rnd, weights = ckpt.round, ckpt.weights
    elif best is not None and rnd == best[0]:
        weights = best[2]
    else:
        kept = sorted({ckpt.round} | ({best[0]} if best is not None else set()))
        raise ConfigError(
            f"round {rnd} of {str(run)!r} is not stored; rounds kept: {kept} "
            "(the checkpoint holds the last round, best.npz the best evaluated one)"
        )
    ds = dataset_for(cfg)
    path = Path(out) if out else run / f"model-round{rnd}.keras"
    return export_model(cfg.train.model, ds.input_shape, ds.num_classes, weights, path, cfg.plugin)
