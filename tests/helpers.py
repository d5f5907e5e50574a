"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(path: Sequence[str | Path]) -> dict[str, str]:
    """The environment of a `perennial` process: the repo (and `path`, a user's package
    folder) on PYTHONPATH, which Ray workers inherit."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, path)])}


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 600,
    path: Sequence[str | Path] = (),
) -> subprocess.CompletedProcess:
    """`perennial ARGS...` as a real process; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "simulations.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(path),
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


# 20 clients, 8 a round, an mlp on 1000 IID examples: the runs test_pooled_run.py pools
# and test_ray_cluster.py spreads over two nodes; see conftest's `many_fedavg_run`.
MANY = [
    *("--set", "rounds=2", "--set", "num-clients=20", "--set", "clients-per-round=8"),
    *("--set", 'model="mlp"', "--set", "train-subset=1000", "--set", "test-subset=200"),
    *("--set", 'partition="iid"', "--quiet"),
]


def many(strategy: str, per_message: int) -> list[str]:
    """MANY with `strategy`, each worker message training `per_message` clients."""
    return [*MANY, "--set", f'strategy="{strategy}"', "--set", f"clients-per-message={per_message}"]


def start_cli(*args: str, log_path: Path, path: Sequence[str | Path] = ()) -> subprocess.Popen:
    """`perennial ARGS...` in its own process group (so a test can SIGKILL all of it)."""
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "simulations.cli", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_env(path),
    )


def kill_after_rows(
    proc: subprocess.Popen, run_dir: Path, rows: int, delay: float = 0.0, timeout: float = 300
) -> None:
    """SIGKILL the run `proc` started (its whole process group) `delay` seconds after its
    metrics.jsonl holds `rows` rows (each row is checkpointed before it is appended), or
    once it has exited or `timeout` passed; the caller checks where it landed."""
    metrics, deadline = Path(run_dir) / "metrics.jsonl", time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rows:
            break
        time.sleep(0.02)
    time.sleep(delay)  # land anywhere in the next round, not only on a boundary
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def metric_rows(run_dir: Path, keys: Sequence[str]) -> list[dict]:
    """The run's metrics rows, each cut to `keys` (the columns a resume must reproduce)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: json.loads(x).get(k) for k in keys} for x in lines if x.strip()]


def checkpoint_weights(run_dir: Path) -> list:
    """The global weights in the run's checkpoint.npz, in the model's order."""
    import numpy as np

    with np.load(Path(run_dir) / "checkpoint.npz") as data:
        names = sorted((k for k in data.files if k.startswith("w/")), key=lambda k: int(k[2:]))
        return [data[k] for k in names]


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
