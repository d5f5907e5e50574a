"""Server halves of the continual methods that need the server: FOT and TARGET.

- FOT (Bakman et al., ICLR 2024): clients report, at the end of a task, per dense layer
  the Gram matrix of its augmented inputs (`fot-gram`, clients/fot.py). The server takes
  those records out of the replies before aggregation (the strategy sees plain weight
  updates), averages them and grows each layer's orthonormal basis (GPM's rule,
  learning/projection.py); every later train message carries the bases (`fot-basis`).
- TARGET (Zhang et al., ICCV 2023): after the last round of each task but the final
  one, the server trains a generator against the new global model (learning/
  generator.py) and ships `target-samples` synthetic images with the model's tempered
  outputs on them (`target-synthetic`) in every later train message. Shipping the batch
  rather than the generator's weights keeps clients model-agnostic (no generator graph,
  no generator compute per step, nothing to train or store: a client keeps no state at
  all) at the price of a fixed set of images per task.

The state (bases or synthetic set) is written to the run directory when it changes and
read back on resume. `row()` adds what it costs to the round's metrics row.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

from learning.config import ExperimentConfig
from learning.generator import TARGET_SYNTHETIC
from learning.projection import FOT_BASIS, FOT_GRAM, grow_basis, kernel_keys
from learning.scenarios import class_groups, task_end_rounds
from learning.streams import Tag, generator
from server.pipeline.updates import ClientUpdate

STATE_FILE = {"fot": "fot-basis.npz", "target": "target-synthetic.npz"}


def _strip(u: ClientUpdate, name: str) -> ClientUpdate:
    extras = {k: v for k, v in u.extras.items() if k != name}
    layout = tuple((n, keys) for n, keys in u.layout if n != name)
    return dataclasses.replace(u, extras=extras, layout=layout)


class ContinualServer:
    """The server's part of FOT or TARGET between the rounds of one run."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path | None, weights: list[np.ndarray]):
        self.cfg, self.method = cfg, cfg.continual.cl_method
        self.shapes = [tuple(w.shape) for w in weights]
        self.path = None if run_dir is None else Path(run_dir) / STATE_FILE[self.method]
        self.state: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                self.state = {k: data[k] for k in data.files}
        self.seconds = 0.0  # server compute spent on the method (this process)
        self.reports = 0  # FOT reports received

    def records(self) -> dict[str, ArrayRecord]:
        """What every train message carries for the method (nothing before there is)."""
        if not self.state:
            return {}
        name = FOT_BASIS if self.method == "fot" else TARGET_SYNTHETIC
        return {name: ArrayRecord({k: Array(np.asarray(v)) for k, v in self.state.items()})}

    def take(self, valid: list[ClientUpdate]) -> list[ClientUpdate]:
        """FOT: the updates without their Gram reports, the basis grown from them."""
        if self.method != "fot":
            return valid
        grams = [u.extras[FOT_GRAM] for u in valid if FOT_GRAM in u.extras]
        if not grams:
            return valid
        t0 = time.perf_counter()
        self.reports += len(grams)
        energy = self.cfg.continual.fot_energy
        for i, key in enumerate(kernel_keys(self.shapes)):
            mean = np.mean([np.asarray(g[i], dtype=np.float64) for g in grams], axis=0)
            old = self.state.get(key)
            self.state[key] = grow_basis(old, mean, energy).astype(np.float32)
        self._save()
        self.seconds += time.perf_counter() - t0
        return [_strip(u, FOT_GRAM) for u in valid]

    def after_round(self, rnd: int, weights: list[np.ndarray]) -> None:
        """TARGET: at the end of every task but the last, the synthetic set of the model."""
        if self.method != "target":
            return
        ends = task_end_rounds(self.cfg)[:-1]
        if rnd not in ends:
            return
        t0 = time.perf_counter()
        self.state = synthetic_set(self.cfg, ends.index(rnd), weights)
        self._save()
        self.seconds += time.perf_counter() - t0

    def _save(self) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, **self.state)
            tmp.replace(self.path)

    def row(self) -> dict[str, Any]:
        """Per-round cost fields: server state bytes, bytes added to each train message,
        server seconds spent so far on the method."""
        size = int(sum(np.asarray(v).nbytes for v in self.state.values()))
        out = {"cl_server_state_bytes": size, "cl_message_extra_bytes": size}
        out["cl_server_seconds"] = round(self.seconds, 3)
        if self.method == "fot":
            out["fot_basis_dims"] = int(sum(v.shape[1] for v in self.state.values()))
            sides = [self.shapes[int(k)][0] + 1 for k in kernel_keys(self.shapes)]
            out["cl_report_bytes"] = int(sum(4 * d * d for d in sides))  # one client's report
        return out


def cost_summary(rows: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """A continual run's memory and compute per method (summary.json): bytes of state a
    client keeps (mean over clients with any, newest version), of server state and of
    what the method adds to each train message and to an end-of-task reply, and the
    mean client seconds per update (the median client's, averaged over rounds)."""
    store = Path(run_dir) / "continual-state"
    newest: dict[str, tuple[int, int]] = {}  # client -> (round, bytes) of its newest file
    for p in store.glob("*/*.npz") if store.is_dir() else ():
        client, _, rest = p.name.partition(".r")
        rnd = int(rest.split(".")[0])
        if client not in newest or rnd > newest[client][0]:
            newest[client] = (rnd, p.stat().st_size)
    per_client = [size for _, size in newest.values()]
    last = rows[-1] if rows else {}
    secs = [r["client_seconds_median"] for r in rows if r.get("client_seconds_median")]
    return {
        "client_state_bytes": float(np.mean(per_client)) if per_client else 0.0,
        "server_state_bytes": float(last.get("cl_server_state_bytes", 0)),
        "message_extra_bytes": float(last.get("cl_message_extra_bytes", 0)),
        "report_bytes": float(last.get("cl_report_bytes", 0)),
        "server_seconds": float(last.get("cl_server_seconds", 0.0)),
        "client_seconds_per_update": float(np.mean(secs)) if secs else None,
    }


def synthetic_set(cfg: ExperimentConfig, task: int, weights: list[np.ndarray]) -> dict:
    """TARGET's images of the model that ends `task` and its tempered outputs on them."""
    from learning.federated_data import dataset_for
    from learning.generator import synthesise, train_generator
    from learning.training import get_trainer

    ds = dataset_for(cfg)
    trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
    trainer.set_weights(weights)
    cl = cfg.continual
    if cl.scenario == "domain-incremental":
        seen = np.arange(ds.num_classes)
    else:
        seen = np.concatenate(class_groups(ds.num_classes, cl.num_tasks)[: task + 1])
    rng = generator(cfg.federation.seed, Tag.GENERATOR_TRAIN, task)
    gen, _ = train_generator(trainer.model, ds.input_shape, seen, cl.target_steps, rng)
    x = synthesise(gen, cl.target_samples, rng)
    soft = trainer.soft_targets(weights, x, cl.lwf_temperature)
    return {"x": x, "soft": soft}
