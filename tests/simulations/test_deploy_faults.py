"""Deployment faults on separate hosts: the SuperLink and every SuperNode in network
namespaces of their own (tests/netns_site.py), TLS for the SuperLink's namespace
address, real flower-superlink / flower-supernode processes, `perennial deploy run`
as a user runs it. Each test injects one fault schedule and checks what the run
directory records; each has a hard wall-time bound, and stops and deletes everything
it made (processes, namespaces) even when it fails.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import checkpoint_weights, start_cli, stop_process_group
from netns_site import SMALL, Site, events, hard_limit, need_netns, rows, sets, wait_for

from simulations import deployment as deploy

pytestmark = [pytest.mark.slow, pytest.mark.tf]


@pytest.fixture
def site(request, tmp_path):
    """A SuperLink host and SuperNode hosts: 2, or the test's `nodes(n, running)`."""
    need_netns()
    marker = request.node.get_closest_marker("nodes")
    nodes, running = marker.args if marker else (2, 2)
    made: list[Site] = []
    try:
        made.append(Site(tmp_path / "dep", nodes, "f", running))
        yield made[0]
    finally:
        if made:
            made[0].close()


def _deploy_run(site: Site, out: Path, values: list[str], log: Path):
    return start_cli(
        "deploy", "run", str(site.root), *sets(values), "--out", str(out), log_path=log
    )


def _finish(proc, log: Path, timeout: float) -> None:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        stop_process_group(proc)
    assert code == 0, log.read_text()[-3000:]


def test_supernode_killed_mid_round_then_restarted_rejoins(site, tmp_path):
    """SIGKILL SuperNode 1's host while it trains round 2 and start it again at once
    (as a service manager would). Round 2 completes with SuperNode 0 and counts the
    failure; the restarted node is refused by the SuperLink until its heartbeat window
    has passed, then re-authenticates (same key, same node id) and trains round 3."""
    out, log = tmp_path / "run", tmp_path / "cli.log"
    values = [*SMALL, "rounds=3", "deploy-round-timeout=60", "deploy-backoff=2"]
    values.append("deploy-retries=4")
    with hard_limit(290), ThreadPoolExecutor(1) as pool:
        proc = _deploy_run(site, out, values, log)
        try:
            wait_for(lambda: site.received(1) >= 2, 200, "SuperNode 1 pulls round 2")
            site.net.kill_host("node-1")
            assert len(rows(out)) == 1  # mid-round 2
            restarted = pool.submit(deploy.restart_supernode, site.root, 1, 150)
            wait_for(lambda: len(rows(out)) >= 2, 150, "round 2 ends without SuperNode 1")
            restarted.result(timeout=150)
            _finish(proc, log, 150)
        finally:
            stop_process_group(proc)
    got = rows(out)
    assert [r["replies"] for r in got] == [2, 1, 2]
    assert [r["failures"] for r in got] == [0, 1, 0]
    one = site.name(1)
    assert [(r, e, n) for r, e, n in events(out) if e != "round-timeout"] == [
        (2, "node-lost", one),
        (3, "node-rejoined", one),
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 3
    assert summary["updates_per_node"] == {site.name(0): 3, one: 2}
    assert [e["event"] for e in summary["fault_events"]][-1] == "node-rejoined"


def test_link_cut_longer_than_round_timeout_then_restored(site, tmp_path):
    """Pull SuperNode 1's cable (its eth0 down) for longer than deploy-round-timeout
    during round 2, then plug it back: round 2 times out cleanly with SuperNode 0's
    update, nothing hangs, and SuperNode 1 (never restarted) trains round 3: round 2's
    message expired with the round (its time to live), so the node is not handed
    stale work when its link comes back."""
    out, log = tmp_path / "run", tmp_path / "cli.log"
    timeout = 35
    values = [*SMALL, "rounds=3", f"deploy-round-timeout={timeout}", "deploy-backoff=3"]
    with hard_limit(290):
        proc = _deploy_run(site, out, values, log)
        try:
            wait_for(lambda: len(rows(out)) >= 1, 200, "round 1")
            site.net.cut("node-1")
            wait_for(lambda: len(rows(out)) >= 2, timeout + 60, "round 2 times out")
            site.net.restore("node-1")
            _finish(proc, log, 200)
        finally:
            stop_process_group(proc)
    got = rows(out)
    assert got[1]["replies"] == 1 and got[1]["failures"] == 1
    assert got[1]["round_seconds"] < timeout + 15  # no hang: the deadline held
    assert got[2]["replies"] == 2  # back in the federation
    one = site.name(1)
    assert events(out) == [
        (2, "round-timeout", None),
        (2, "node-lost", one),
        (3, "node-rejoined", one),
    ]


def test_superlink_killed_and_resumed_is_bit_identical(site, tmp_path):
    """Kill the SuperLink's host after round 1 (SuperLink, SuperExec and ServerApp
    die); `deploy run` fails in one line saying how to resume; the SuperLink restarts
    with its database (same port, same node ids, SuperNodes reconnect by themselves)
    and `deploy run --resume` finishes rounds 2-3 with the rows and weights of an
    uninterrupted run on the same deployment, and the server key it started with."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    values = [*SMALL, "rounds=3"]
    with hard_limit(290):
        proc = _deploy_run(site, ref, values, tmp_path / "ref.log")
        _finish(proc, tmp_path / "ref.log", 200)
        log = tmp_path / "cli.log"
        proc = _deploy_run(site, out, values, log)
        try:
            wait_for(lambda: len(rows(out)) >= 1, 200, "round 1")
            site.net.kill_host("link")
            code = proc.wait(timeout=60)
        finally:
            stop_process_group(proc)
        lines = log.read_text().strip().splitlines()
        assert code == 2 and "--resume" in lines[-1] and "SuperLink exited" in lines[-1], lines
        deploy.restart_superlink(site.root, timeout=60)
        log = tmp_path / "resume.log"
        proc = start_cli("deploy", "run", str(site.root), "--resume", str(out), log_path=log)
        _finish(proc, log, 200)
    want, got = rows(ref), rows(out)
    assert [r["round"] for r in got] == [1, 2, 3]
    keys = ("accuracy", "loss", "replies", "failures", "global_update_norm")
    for a, b in zip(want, got, strict=True):
        assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}
    for a, b in zip(checkpoint_weights(ref), checkpoint_weights(out), strict=True):
        np.testing.assert_array_equal(a, b)
    assert events(out) == [(2, "resumed", None)]


@pytest.mark.nodes(3, 2)
def test_late_joiner_is_sampled_from_the_next_round(site, tmp_path):
    """Three keys registered, two SuperNodes running; the third starts once the run
    has begun. With deploy-late-joiners it joins the population at the next round's
    start (recorded as node-joined) and trains from then on."""
    out, log = tmp_path / "run", tmp_path / "cli.log"
    values = [*SMALL, "rounds=2", "deploy-late-joiners=true", "deploy-round-timeout=120"]
    with hard_limit(290):
        proc = _deploy_run(site, out, values, log)
        try:
            wait_for(lambda: site.received(0) >= 1, 200, "round 1 under way")
            site.start_node(2)
            assert not rows(out)  # joined while round 1 runs
            _finish(proc, log, 200)
        finally:
            stop_process_group(proc)
    got = rows(out)
    assert [r["replies"] for r in got] == [2, 3]
    assert events(out) == [(2, "node-joined", site.name(2))]
    nodes = json.loads((out / "nodes.json").read_text())["node_ids"]
    assert nodes == [*sorted(site.node_ids[:2]), site.node_ids[2]]
