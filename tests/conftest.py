"""Shared fixtures. A Ray head is started once per test session (as its own process
group, so that only what we started is stopped) and every simulation test connects
to it with --ray-address instead of starting Ray again."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flwr.supercore.task_identity import TaskIdentity
from helpers import forget_ray_cluster, free_port, many, run_cli, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory):
    """Address of a 2-CPU Ray head started for this test session."""
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_bin is None:
        pytest.fail("the `ray` command is not installed; pip install 'flwr[simulation]'")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    log = open(temp / "ray-start.log", "w")
    proc = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--object-store-memory={512 * 1024 * 1024}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited early: {(temp / 'ray-start.log').read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    time.sleep(2.0)
    yield address
    stop_process_group(proc)
    log.close()
    forget_ray_cluster(address)


@pytest.fixture(scope="session")
def many_fedavg_run(ray_address, tmp_path_factory) -> Path:
    """The run directory of helpers.many("fedavg", 1) on the session cluster: the
    reference that pooled messages (test_pooled_run.py) and a two-node cluster
    (test_ray_cluster.py) must each reproduce. Shared, it is one process, not two."""
    out = tmp_path_factory.mktemp("many") / "fedavg-k1"
    proc = run_cli("run", *many("fedavg", 1), "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session", autouse=True)
def _task_identity():
    """Flower stamps new Messages with the task that creates them; only a running app
    sets that, so unit tests that build Messages get a fixed identity (restored after)."""
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
