"""Atomic per-round checkpoints: global weights, strategy state, round and metrics.

Everything else a round depends on is a pure function of (seed, round, client):
sampling, shuffling, attacks and faults; per-client state is versioned per round on
disk. So weights + strategy state + round + the metrics so far are enough for a run
killed at any moment to resume and end exactly where an uninterrupted run ends.

The metrics so far are not rewritten into every checkpoint (that costs rounds squared):
metrics.jsonl already holds them. A checkpoint keeps the row count and its own round's
row (the loop checkpoints before it appends that row, so a kill in between loses it
from metrics.jsonl); resume reads the earlier rows back from metrics.jsonl.

The strategy state is captured generically: every attribute holding arrays (NumPy
arrays, ArrayRecords, dicts or lists of arrays, or None before the first round) —
FedOpt's moments, FedAvgM's momentum, SCAFFOLD's c, FedDyn's h, centred clipping's v.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

from learning.errors import ConfigError
from server.run_dir import sync_file, write_atomic

CHECKPOINT = "checkpoint.npz"


@dataclass
class Checkpoint:
    round: int
    weights: list[np.ndarray]
    state: dict[str, Any]
    rows: list[dict[str, Any]]
    # A scheduler's own state (async: clock, updates in flight): {"meta", "arrays"}
    scheduler: dict[str, Any] | None = None


def _is_arrays(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, np.ndarray) for v in value)


def strategy_state(strategy: object) -> dict[str, Any]:
    """The strategy's array-valued attributes (its learned state), by name."""
    state = {}
    declared = getattr(strategy, "STATE", None)  # ours name their state (strategies/base.py)
    none_ok = _FLOWER_STATE | {"_x"} | ({f"_{declared}"} if declared else set())
    for name, value in vars(strategy).items():
        if isinstance(value, (np.ndarray, ArrayRecord)) or _is_arrays(value):
            state[name] = value
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, np.ndarray) for v in value.values())
        ):
            state[name] = value
        elif value is None and name in none_ok:
            state[name] = None
    inner = getattr(strategy, "inner", None)  # a wrapper (central DP) keeps its strategy here
    if inner is not None:
        state.update({f"inner.{k}": v for k, v in strategy_state(inner).items()})
    return state


# Flower strategies' attributes that start as None and become arrays after round 1.
_FLOWER_STATE = {"m_t", "v_t", "momentum_vector", "current_arrays"}


def restore_strategy(strategy: object, state: dict[str, Any]) -> None:
    for name, value in state.items():
        target = strategy
        while "." in name:
            head, name = name.split(".", 1)
            target = getattr(target, head)
        setattr(target, name, value)


def save_checkpoint(
    run_dir: Path,
    rnd: int,
    weights: list[np.ndarray],
    strategy: object,
    rows: list[dict],
    scheduler: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None,
) -> None:
    """Write `checkpoint.npz` atomically (temporary file, fsync, rename)."""
    arrays: dict[str, np.ndarray] = {f"w/{i}": w for i, w in enumerate(weights)}
    layout: dict[str, Any] = {}
    for name, value in strategy_state(strategy).items():
        if value is None:
            layout[name] = {"kind": "none"}
        elif isinstance(value, np.ndarray):
            layout[name] = {"kind": "ndarray"}
            arrays[f"s/{name}"] = value
        elif isinstance(value, ArrayRecord):
            keys = list(value.keys())
            layout[name] = {"kind": "arrayrecord", "keys": keys}
            for j, k in enumerate(keys):
                arrays[f"s/{name}/{j}"] = value[k].numpy()
        elif isinstance(value, dict):
            keys = list(value.keys())
            layout[name] = {"kind": "dict", "keys": keys}
            for j, k in enumerate(keys):
                arrays[f"s/{name}/{j}"] = value[k]
        else:
            layout[name] = {"kind": "list", "n": len(value)}
            for j, v in enumerate(value):
                arrays[f"s/{name}/{j}"] = v
    meta = {
        "round": rnd,
        "num_weights": len(weights),
        "layout": layout,
        "num_rows": len(rows),
        "last_row": rows[-1] if rows else None,
    }
    if scheduler is not None:
        meta["scheduler"] = scheduler[0]
        arrays.update({f"x/{k}": v for k, v in scheduler[1].items()})
    arrays["meta"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    sync_file(Path(run_dir) / "metrics.jsonl")  # the earlier rows it names (_resume_rows)
    write_atomic(Path(run_dir) / CHECKPOINT, buf.getvalue())


def load_checkpoint(run_dir: Path) -> Checkpoint:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise ConfigError(
            f"{str(run_dir)!r} has no {CHECKPOINT}; it stopped before its first checkpoint "
            "(after round 1, or round checkpoint-every), start it afresh"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = [data[f"w/{i}"] for i in range(meta["num_weights"])]
            state: dict[str, Any] = {}
            for name, spec in meta["layout"].items():
                kind = spec["kind"]
                if kind == "none":
                    state[name] = None
                elif kind == "ndarray":
                    state[name] = data[f"s/{name}"]
                elif kind == "arrayrecord":
                    state[name] = ArrayRecord(
                        {k: Array(data[f"s/{name}/{j}"]) for j, k in enumerate(spec["keys"])}
                    )
                elif kind == "dict":
                    state[name] = {k: data[f"s/{name}/{j}"] for j, k in enumerate(spec["keys"])}
                else:
                    state[name] = [data[f"s/{name}/{j}"] for j in range(spec["n"])]
            scheduler = None
            if "scheduler" in meta:
                extra = {k[2:]: data[k] for k in data.files if k.startswith("x/")}
                scheduler = {"meta": meta["scheduler"], "arrays": extra}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"checkpoint {str(path)!r} is unreadable ({exc}); start afresh") from None
    rows = meta["rows"] if "rows" in meta else _resume_rows(Path(run_dir), meta)
    return Checkpoint(meta["round"], weights, state, rows, scheduler)


def _resume_rows(run_dir: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The checkpointed run's rows: the first num-rows - 1 lines of metrics.jsonl (all
    fsynced before this checkpoint was written; a torn line can only come later) and
    the checkpoint's own last row."""
    count, last = int(meta["num_rows"]), meta["last_row"]
    if count == 0:
        return []
    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()[: count - 1] if path.exists() else []
    try:
        rows = [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        rows = []
    if len(rows) != count - 1:
        raise ConfigError(
            f"{str(path)!r} holds {len(rows)} readable rows but the checkpoint of round "
            f"{meta['round']} needs {count - 1}; the run directory is damaged, start afresh"
        )
    return [*rows, last]
