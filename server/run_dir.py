"""The run directory: resolved config, per-round metrics, summary, plots.

Writes never damage what is already there: the directory is created fresh (an
existing non-empty one is refused), `metrics.jsonl` is appended one flushed line
per round (safe against a killed process; fsynced before each checkpoint, which relies
on it, and before the summary, not per row: an asynchronous run writes a row per update),
and `summary.json` is written to a temporary file and renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig, to_toml
from learning.errors import ConfigError
from privacy.server_key import SERVER_ONLY_KEYS


def prepare_run_dir(path: str | Path) -> Path:
    """Create `path` for a new run; refuse one that already holds files."""
    p = Path(path)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise ConfigError(
            f"run directory {str(p)!r} already exists and is not empty; "
            "choose another --out or remove it"
        )
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run directory {str(p)!r}: {exc.strerror}") from None
    return p


def write_atomic(path: Path, data: str | bytes) -> None:
    """Temporary file, fsync, rename: a reader sees the old file or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; run files are meant to be shared
        binary = isinstance(data, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_file(path: Path) -> None:
    """fsync `path` if it exists: what was appended to it survives a power loss."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunRecorder:
    """Appends metrics rows and writes the config and summary of one run."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.metrics_path = self.root / "metrics.jsonl"

    def write_config(self, cfg: ExperimentConfig) -> None:
        """The resolved config, less the server's secrets (privacy/server_key.py keeps
        the key in the owner-only `server-key` file instead)."""
        flat = {k: v for k, v in cfg.to_flat().items() if k not in SERVER_ONLY_KEYS}
        write_atomic(self.root / "config.toml", to_toml(flat))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=False) + "\n")

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl atomically (resume: the checkpoint's rows are the truth)."""
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def write_summary(self, summary: dict[str, Any]) -> None:
        sync_file(self.metrics_path)  # a finished run's rows are on disk before it says so
        write_atomic(self.root / "summary.json", json.dumps(summary, indent=2) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
