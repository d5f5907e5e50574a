"""Round-loop scenarios on the fake grid, shared by the golden test and its generator.

Each scenario runs the real loop (no Ray, no training) and returns the metrics rows minus
timings and memory readings, and a digest of the final weights. `golden/loop.json` holds
what the loop produced before it became a pipeline; `python tests/server/loop_scenarios.py`
rewrites it (only ever on purpose: the test exists to fail when behaviour changes).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))

from fake_grid import FakeClients  # noqa: E402

from learning.config import ExperimentConfig  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "loop.json"
UNTIMED = {
    "train_seconds",
    "health_seconds",
    "aggregate_seconds",
    "eval_seconds",
    "round_seconds",
    "elapsed_seconds",
    "server_rss_mb",
    "workers_rss_mb",
}
# Timings withheld under central DP after the golden rows were recorded (they grow with
# the secret sample): dropped from `outside_epsilon` before comparing.
WITHHELD_LATER = {
    "train_seconds",
    "health_seconds",
    "aggregate_seconds",
    "round_seconds",
    "elapsed_seconds",
}
# The virtual clock's fields, added after the golden rows were recorded: the recorded
# fields must stay bit-identical; these are checked in tests/server/test_clock.py.
VIRTUAL = {
    "virtual_seconds",
    "virtual_round_seconds",
    "utilisation",
    "late_updates",
    "offline_dropouts",
    "unavailable",
}
BASE = {"model": "small-cnn", "num-clients": 20, "clients-per-round": 5, "rounds": 4, "seed": 3}
FAULTS = {
    "crash": {(p, 0) for p in range(0, 20, 3)},
    "nan": {(p, 0) for p in range(1, 20, 5)},
    "bad_shape": {(p, 2) for p in range(2, 20, 4)},
    "drop": {(p, 3) for p in (5, 7, 8, 10)},
    "zero": {(p, 0) for p in (13, 17)},
}


def evaluate(weights: list[np.ndarray]) -> tuple[float, float]:
    return float(np.mean(weights[0])), float(np.mean(weights[-1]))


class FakeTasks:
    """A continual evaluator: task boundary at round 3."""

    def must_evaluate(self, server_round: int) -> bool:
        return server_round == 3

    def __call__(self, server_round: int, weights: list[np.ndarray]) -> dict[str, Any]:
        return {"task": server_round // 2, "acc_task_0": float(np.sum(weights[1]))}


def _cfg(**extra: Any) -> ExperimentConfig:
    return ExperimentConfig.from_flat({**BASE, **extra})


SCENARIOS: dict[str, dict[str, Any]] = {
    "fedavg": {"cfg": {"eval-every": 2}, "slots": 3, "tasks": True},
    "fedmedian": {"cfg": {"strategy": "fedmedian"}},
    "retry": {"cfg": {"min-clients": 5, "max-retries": 2}, "grid": FAULTS},
    "skip": {"cfg": {"min-clients": 4, "too-few": "skip"}, "grid": FAULTS},
    "central-dp": {
        "cfg": {
            "dp": "central",
            "num-clients": 200,
            "clients-per-round": 20,
            "rounds": 3,
            "noise-multiplier": 1.0,
            "clipping-norm": 10.0,
            "delta": 1e-3,
            "privacy-seed": 11,
            "operator-diagnostics": True,
        },
        "grid": {"crash": {(p, 2) for p in range(200)}},
    },
    **{
        name: {
            "cfg": {
                "attack": name,
                "malicious-fraction": 0.3,
                "clients-per-round": 8,
                "rounds": 3,
                "strategy": "fedtrimmedavg",
            }
        }
        for name in ("alie", "ipm", "min-max")
    },
    "bound": {
        "cfg": {"strategy": "krum", "num-malicious": 1, "rounds": 3, "max-retries": 0},
        "grid": {"crash": {(p, 2) for p in range(20) if p % 2}},
    },
    "scaffold": {"cfg": {"strategy": "scaffold"}, "grid": {"scaffold": True}},
    "resume": {"cfg": {"strategy": "scaffold"}, "grid": {"scaffold": True}, "resume": 2},
    "deployment": {
        "cfg": {"federation-mode": "deployment", "clients-per-round": 3, "min-clients": 3},
        "slots": 6,
        "grid": {"crash": {(1, 0), (4, 2)}},
    },
}


def clean(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in UNTIMED and k not in VIRTUAL}
    if "outside_epsilon" in out:  # central DP's list of unreleased names
        out["outside_epsilon"] = [
            k for k in out["outside_epsilon"] if k not in VIRTUAL and k not in WITHHELD_LATER
        ]
    return out


def digest(weights: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(f"{w.dtype.str}{w.shape}".encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def _lists(histograms: dict[str, Any]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in histograms.items()}


class _Stop(Exception):
    pass


def run_scenario(name: str, tmp: Path) -> dict[str, Any]:
    """{"rows": cleaned rows (JSON text, key order kept), "weights": digest}."""
    from server.checkpoint import load_checkpoint
    from server.loop import run_rounds
    from server.run_dir import RunRecorder

    spec = SCENARIOS[name]
    cfg = _cfg(**spec["cfg"])
    slots = spec.get("slots", 4)
    grid = FakeClients(slots, **spec.get("grid", {}))
    tasks = FakeTasks() if spec.get("tasks") else None
    run_dir = tmp / name
    run_dir.mkdir(parents=True, exist_ok=True)
    seen: list[dict[str, Any]] = []
    if "resume" in spec:
        stop_at = spec["resume"]

        recorder = RunRecorder(run_dir)

        def stop(row, hist):
            recorder.append_metrics(row)
            if row["round"] == stop_at:
                raise _Stop

        try:
            run_rounds(grid, cfg, evaluate, slots, on_round=stop, run_dir=run_dir)
        except _Stop:
            pass
        resume = load_checkpoint(run_dir)
        grid = FakeClients(slots, **spec.get("grid", {}))
        result = run_rounds(
            grid, cfg, evaluate, slots, run_dir=run_dir, resume=resume, task_eval=tasks
        )
    else:
        result = run_rounds(
            grid,
            cfg,
            evaluate,
            slots,
            on_round=lambda row, hist: seen.append(
                {k: np.asarray(v).tolist() for k, v in hist.items()}
            ),
            run_dir=run_dir,
            task_eval=tasks,
        )
    sent = [
        [
            int(m.metadata.dst_node_id),
            {k: v for k, v in m.content["config"].items() if isinstance(v, int | float | str)},
        ]
        for m in grid.seen
    ]
    return {
        "rows": [json.dumps(clean(r)) for r in result.rows],
        "histograms": json.dumps(seen),
        "sent": hashlib.sha256(json.dumps(sent, sort_keys=True).encode()).hexdigest(),
        "weights": digest(result.weights),
    }


if __name__ == "__main__":
    import tempfile

    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: run_scenario(name, Path(tmp)) for name in SCENARIOS}
    GOLDEN.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
