"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import signal
import socket
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


def start_cli(*args: str, log_path: Path) -> subprocess.Popen:
    """`perennial ARGS...` in its own process group (so a test can SIGKILL all of it)."""
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "simulations.cli", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the group a test started (SIGKILL if it lingers); nothing else is touched."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def forget_ray_cluster(address: str) -> None:
    """`ray start` records its address for later `ray.init()` calls to join; once our
    cluster is gone, remove the record (only if it is ours) lest others hang joining it."""
    current = Path("/tmp/ray/ray_current_cluster")
    try:
        if current.read_text().strip() == address:
            current.unlink()
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def context(node_id: int = 3):
    """A ClientApp Context for calling handlers and mods directly."""
    from flwr.app import Context, RecordDict

    return Context(run_id=1, node_id=node_id, node_config={}, state=RecordDict(), run_config={})
