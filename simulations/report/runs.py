"""Reading run directories for the report: what could be read, and notes on what not."""

from __future__ import annotations

import json
import math
import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learning.errors import ConfigError


@dataclass
class Run:
    """What could be read from one run directory; `notes` say what could not."""

    path: Path
    name: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    config: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


def load_run(path: Path) -> Run:
    """Read one run directory; only a missing metrics.jsonl is an error."""
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise ConfigError(
            f"{str(path)!r} is not a run directory (no metrics.jsonl); "
            "pass the folder printed by perennial run"
        )
    notes: list[str] = []
    rows, bad = read_jsonl(metrics)
    if bad:
        notes.append(f"{bad} unreadable line(s) in metrics.jsonl skipped")
    summary: dict[str, Any] = {}
    try:
        loaded = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            summary = loaded
        else:
            notes.append("summary.json is not an object")
    except FileNotFoundError:
        notes.append("no summary.json (run unfinished?)")
    except (OSError, ValueError):
        notes.append("summary.json unreadable")
    config: dict[str, Any] | None = None
    try:
        config = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        notes.append("no config.toml")
    except (OSError, ValueError):
        notes.append("config.toml unreadable")
    return Run(path, path.resolve().name or str(path), rows, summary, config, notes)


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1  # e.g. the last line of a run killed mid-write
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def name_runs(runs: list[Run]) -> None:
    """Directory names, made unique (parent/name, then #i) so legends stay unambiguous."""
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.path.resolve().parent.name}/{r.name}"
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} #{seen[r.name]}"


def num(value: Any) -> float | None:
    """A finite-or-not real number, or None for gaps, bools and text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def series(run: Run, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(run.rows):
        y = num(row.get(key))
        if y is None or math.isnan(y):
            continue
        x = num(row.get("round"))
        xs.append(int(x) if x is not None else i + 1)
        ys.append(y)
    return xs, ys


def values(run: Run, key: str) -> list[float]:
    return [v for v in (num(r.get(key)) for r in run.rows) if v is not None]


def median(run: Run, key: str) -> float | None:
    vals = values(run, key)
    return statistics.median(vals) if vals else None


def total(run: Run, key: str) -> float | None:
    vals = values(run, key)
    return sum(vals) if vals else None


def matrix(raw: Any) -> np.ndarray | None:
    """accuracy_matrix as a float array; ragged rows and nulls become NaN."""
    if not isinstance(raw, list) or not raw or not all(isinstance(r, list) for r in raw):
        return None
    width = max(len(r) for r in raw)
    if width == 0:
        return None
    out = np.full((len(raw), width), np.nan)
    for i, row in enumerate(raw):
        for j, v in enumerate(row):
            n = num(v)
            if n is not None:
                out[i, j] = n
    return out
