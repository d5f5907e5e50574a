"""A Ray worker node lost mid-run, on separate hosts: the Ray head and a worker node
in network namespaces of their own (tests/netns_site.py's switch), `perennial run
--ray-address` from the head's host. The worker's host is killed (every process on it)
after round 2: the run goes on with the head's node, counts the failed updates, and
`updates_per_node` shows both nodes before the loss and only the head's after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT, forget_ray_cluster, stop_process_group
from netns_site import hard_limit, need_netns, rows, wait_for

from simulations.deployment.netns import Network

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

ARGS = [
    "rounds=5",
    "num-clients=8",
    "clients-per-round=8",
    "train-subset=800",
    "test-subset=200",
    'model="mlp"',
    "local-epochs=1",
    "timeout=120",
]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "FLWR_TELEMETRY_ENABLED": "0",
        "PYTHONPATH": str(ROOT),
    }


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdout=open(log, "w"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_env(),
        cwd=ROOT,
    )


def _nodes_alive(head, address: str) -> int:
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    cmd = head.wrap([sys.executable, "-c", probe])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env())
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def test_worker_node_lost_mid_run_the_run_goes_on(tmp_path):
    need_netns()
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    temp = tempfile.mkdtemp(prefix="pray", dir="/tmp")  # short: Ray's socket paths
    net, procs, address = Network("ray"), [], ""
    try:
        head, work = net.add("head"), net.add("work")
        address = f"{head.address}:6379"
        common = ["--block", "--num-cpus=1", "--disable-usage-stats"]
        common.append(f"--object-store-memory={300 * 1024 * 1024}")
        with hard_limit(280):
            head_cmd = [ray, "start", "--head", "--port=6379", "--include-dashboard=false"]
            head_cmd += [f"--node-ip-address={head.address}", f"--temp-dir={temp}", *common]
            procs.append(_start(head.wrap(head_cmd), tmp_path / "head.log"))
            wait_for(lambda: _nodes_alive(head, address) >= 1, 90, "the Ray head")
            work_cmd = [ray, "start", f"--address={address}"]
            work_cmd += [f"--node-ip-address={work.address}", *common]
            procs.append(_start(work.wrap(work_cmd), tmp_path / "work.log"))
            wait_for(lambda: _nodes_alive(head, address) >= 2, 90, "the worker node joins")
            out = tmp_path / "run"
            sets = [a for v in ARGS for a in ("--set", v)]
            run = [sys.executable, "-m", "simulations.cli", "run", *sets, "--quiet"]
            run += ["--out", str(out), "--ray-address", address]
            proc = _start(head.wrap(run), tmp_path / "run.log")
            procs.append(proc)
            wait_for(lambda: len(rows(out)) >= 2, 180, "round 2")
            killed = net.kill_host("work")
            assert killed  # the raylet and its workers were there
            code = proc.wait(timeout=150)
        assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        for p in procs:
            stop_process_group(p)
        net.close()
        forget_ray_cluster(address)
        shutil.rmtree(temp, ignore_errors=True)
    got = rows(out)
    assert [r["round"] for r in got] == [1, 2, 3, 4, 5]
    before = {n for r in got[:2] for n in r["updates_per_node"]}
    after = [set(r["updates_per_node"]) for r in got[3:]]
    assert len(before) == 2  # both nodes trained before the loss
    assert all(len(a) == 1 and a < before for a in after)  # only the head's node after
    assert all(r["replies"] + r["failures"] == 8 for r in got)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 5
    assert set(summary["updates_per_node"]) == before
