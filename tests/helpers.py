"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`perennial ARGS...` as a real process; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "simulations.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


SMALL = [
    "--set",
    "rounds=2",
    "--set",
    "num-clients=4",
    "--set",
    "clients-per-round=4",
    "--set",
    "train-subset=1200",
    "--set",
    "test-subset=500",
    "--set",
    "local-epochs=1",
    "--quiet",
]
