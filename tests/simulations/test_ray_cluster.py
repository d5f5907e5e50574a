"""A two-node Ray cluster on this machine (two `ray start` processes, one CPU each):
a short run spreads its clients over both nodes, the summary counts them, and its
accuracies equal the same run's on the one-node session cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import forget_ray_cluster, free_port, many, run_cli, stop_process_group

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]


def _ray_start(args: list[str], log: Path) -> subprocess.Popen:
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    return subprocess.Popen(
        [ray_bin, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )


def _accuracies(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["accuracy"] for x in lines]


def _alive_nodes(address: str) -> int:
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def test_two_node_cluster_trains_on_both_nodes(tmp_path, many_fedavg_run):
    """The one-node run it must equal is the session's `many_fedavg_run` (conftest.py),
    shared with test_pooled_run.py: the suite starts one process fewer."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = _ray_start(
        [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--object-store-memory={300 * 1024 * 1024}",
        ],
        tmp_path / "head.log",
    )
    worker = None
    try:
        time.sleep(8)
        worker = _ray_start(
            [f"--address={address}", f"--object-store-memory={300 * 1024 * 1024}"],
            tmp_path / "worker.log",
        )
        deadline = time.monotonic() + 90
        while _alive_nodes(address) < 2:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(2)
        out = tmp_path / "run"
        proc = run_cli("run", *many("fedavg", 1), "--out", str(out), "--ray-address", address)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        per_node = summary["updates_per_node"]
        assert len(per_node) == 2, per_node
        assert sum(per_node.values()) == 16
        assert all(n > 0 for n in per_node.values())
        # The same config and seed on the one-node session cluster: the same numbers.
        assert _accuracies(out) == _accuracies(many_fedavg_run)
    finally:
        if worker is not None:
            stop_process_group(worker)
        stop_process_group(head)
        forget_ray_cluster(address)
