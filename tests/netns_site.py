"""A deployment on separate hosts for the fault tests: one network namespace for the
SuperLink and one per SuperNode, on a private switch (simulations/deployment/netns.py).

`Site` starts it (TLS certificate for the SuperLink's namespace address, SuperNode
authentication on) and `close()` stops what it started and deletes the namespaces.
`hard_limit` bounds a test in wall time (no pytest-timeout in this environment): past
it the test fails with TimeoutError, and its finalisers still clean up.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.pipeline.node_faults import node_name
from simulations import deployment as deploy
from simulations.deployment.netns import Network, unavailable

PORT = 9093

# Two rounds' worth of small, quick training per SuperNode (an mlp, 20 local steps).
SMALL = [
    "train-subset=1000",
    "test-subset=300",
    'model="mlp"',
    "max-local-steps=20",
    "lr=0.05",
    'partition="iid"',
]


def need_netns() -> None:
    """Skip, saying why, where this machine cannot make network namespaces."""
    why = unavailable()
    if why is not None:
        pytest.skip(f"separate hosts need network namespaces: {why}")


class Site:
    """A SuperLink host and `nodes` SuperNode hosts (keys registered for all), the first
    `running` of them (default all) started and connected."""

    def __init__(self, root: Path, nodes: int, tag: str, running: int | None = None) -> None:
        self.root = root
        self.net = Network(tag)
        self.started = False
        self.link = self.net.add("link")
        self.hosts = [self.net.add(f"node-{i}") for i in range(nodes)]
        self.files = deploy.certs(root, nodes, [self.link.address])
        entry = deploy.superlink(root, self.link.address, PORT, 180, self.link.netns)
        self.started = True
        self.node_ids: list[int] = entry["node_ids"]
        self.netns = {i: h.netns for i, h in enumerate(self.hosts)}
        first = list(range(nodes if running is None else running))
        deploy.supernodes(root, timeout=180, only=first, netns=self.netns)

    def start_node(self, i: int) -> None:
        """Start SuperNode i (registered, not started yet) on its host."""
        deploy.supernodes(self.root, timeout=180, only=[i], netns=self.netns)

    def name(self, i: int) -> str:
        """SuperNode i as rows and summaries name it."""
        return node_name(self.node_ids[i])

    def received(self, i: int) -> int:
        """Train messages SuperNode i has pulled so far (its log, over restarts)."""
        log = self.files.logs / f"supernode-{i}.log"
        return log.read_text(errors="replace").count("Receiving: train message")

    def close(self) -> None:
        try:
            if self.started and self.files.state.is_file():
                deploy.down(self.root)
        finally:
            self.net.close()


@contextlib.contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Fail the test with TimeoutError once `seconds` have passed (main thread)."""

    def expire(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"test exceeded its hard limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_for(what: Callable[[], bool], timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {name}")
        time.sleep(0.2)


def rows(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def events(run_dir: Path) -> list[tuple[int, str, str | None]]:
    """(round, event, node) of every fault event the run recorded."""
    return [
        (r["round"], e["event"], e.get("node"))
        for r in rows(run_dir)
        for e in r.get("fault_events") or []
    ]


def sets(values: list[str]) -> list[str]:
    return [a for v in values for a in ("--set", v)]
