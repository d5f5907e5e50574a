"""`perennial deploy bench-faults`: one experiment on separate hosts, three ways.

The SuperLink and N SuperNodes each get a network namespace (netns.py; root needed),
and the same config runs three times on that deployment:

- `clean`: no faults;
- `nodes`: SuperNode `--node` is SIGKILLed (its whole host) while it trains round
  `--kill-round` and started again after round `--restart-round` - 1 (so it is back
  for round `--restart-round`);
- `resumed`: the same node faults, and the SuperLink's host is killed while round
  `--link-round` runs, the SuperLink restarted and the run continued with
  `deploy run --resume`.

It writes OUT/bench-faults.md and .json: per-round accuracy of the three runs, whether
the resumed run's rounds after the resume are bit-identical to `nodes` (same fault
schedule, no SuperLink restart), and whether the fault events each run recorded are the
ones the schedule injected (`expected_events`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learning.config import ExperimentConfig
from server.pipeline.node_faults import node_name
from simulations.deployment.netns import Network, unavailable
from simulations.deployment.processes import DeployError, certs
from simulations.deployment.run import deployment_config, down, resume_config, run
from simulations.deployment.superlink import restart_superlink, superlink
from simulations.deployment.supernodes import restart_supernode, supernodes

PORT = 9093
COMPARED = ("accuracy", "loss", "replies", "failures")


@dataclass(frozen=True)
class Schedule:
    """Which SuperNode dies in which round, when it is back, when the SuperLink dies."""

    node: int = 1
    kill_round: int = 2
    restart_round: int = 4
    link_round: int = 5  # 0: the SuperLink is never killed


def expected_events(s: Schedule, name: str, resumed: bool) -> list[tuple[int, str, Any]]:
    """(round, event, node) a run with schedule `s` must record (round-timeout left out:
    whether a dead node times out or is reported unavailable first is Flower's timing)."""
    want: list[tuple[int, str, Any]] = [
        (s.kill_round, "node-lost", name),
        (s.restart_round, "node-rejoined", name),
    ]
    if resumed and s.link_round:
        want.append((s.link_round, "resumed", None))
    return sorted(want, key=lambda e: e[0])


def recorded_events(rows: list[dict[str, Any]]) -> list[tuple[int, str, Any]]:
    return [
        (r["round"], e["event"], e.get("node"))
        for r in rows
        for e in r.get("fault_events") or []
        if e["event"] != "round-timeout"
    ]


def _rows(out: Path) -> list[dict[str, Any]]:
    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x) for x in lines if x.strip()]


def _received(root: Path, i: int) -> int:
    log = root / "logs" / f"supernode-{i}.log"
    return log.read_text(errors="replace").count("Receiving: train message") if log.exists() else 0


def _until(what, timeout: float, name: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline or stop.is_set():
            raise DeployError(f"bench-faults: not within {timeout:.0f} s: {name}")
        time.sleep(0.2)


class _Faults:
    """Injects the schedule into one run from a background thread (this process)."""

    def __init__(self, net: Network, root: Path, out: Path, s: Schedule, link: bool) -> None:
        self.net, self.root, self.out, self.s, self.link = net, root, out, s, link
        self.base = _received(root, s.node)  # logs keep earlier runs' messages
        self.stop = threading.Event()  # the run ended early: stop waiting

    def __call__(self) -> None:
        s, host = self.s, f"node-{self.s.node}"
        done = lambda n: lambda: len(_rows(self.out)) >= n  # noqa: E731
        # Mid-round: the node has pulled the round's message (and trains on it).
        got = lambda: _received(self.root, s.node) - self.base >= s.kill_round  # noqa: E731
        _until(got, 1800, f"SuperNode {s.node} pulls round {s.kill_round}", self.stop)
        self.net.kill_host(host)
        _until(done(s.restart_round - 1), 1800, f"round {s.restart_round - 1}", self.stop)
        restart_supernode(self.root, s.node, 300)
        if self.link and s.link_round:
            _until(done(s.link_round - 1), 1800, f"round {s.link_round - 1}", self.stop)
            time.sleep(2.0)  # into the round
            self.net.kill_host("link")


def _one_run(
    net: Network, root: Path, cfg: ExperimentConfig, s: Schedule | None, link: bool
) -> dict[str, Any]:
    """One run of `cfg`, with the schedule's faults (None: none); its rows and time."""
    from concurrent.futures import ThreadPoolExecutor

    out = Path(cfg.runtime.out_dir)
    started = time.monotonic()
    injector = _Faults(net, root, out, s, link) if s else None
    with ThreadPoolExecutor(1) as pool:
        faults = pool.submit(injector) if injector else None
        try:
            try:
                run(root, cfg, timeout=7200)
            except DeployError as exc:
                if not link:
                    raise
                print(f"perennial: {exc}", flush=True)  # the SuperLink died, as scheduled
                if faults is not None:
                    faults.result(timeout=60)
                restart_superlink(root, 300)
                run(root, resume_config(out), timeout=7200)
            if faults is not None:
                faults.result(timeout=60)
        finally:
            if injector is not None:
                injector.stop.set()
    return {"rows": _rows(out), "seconds": round(time.monotonic() - started, 1)}


def _weights(out: Path) -> list[np.ndarray]:
    with np.load(out / "checkpoint.npz") as data:
        names = sorted((k for k in data.files if k.startswith("w/")), key=lambda k: int(k[2:]))
        return [data[k] for k in names]


def bench_faults(
    config: str | None, overrides: list[str], out: Path, nodes: int, s: Schedule
) -> dict[str, Any]:
    """Run clean / nodes / resumed on `nodes` SuperNodes in namespaces; the comparison."""
    why = unavailable()
    if why is not None:
        raise DeployError(f"bench-faults needs network namespaces: {why}")
    if not 0 <= s.node < nodes or not 1 < s.kill_round < s.restart_round:
        raise DeployError("bench-faults: need 0 <= --node < --nodes, 1 < kill < restart round")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfgs = {k: deployment_config(config, overrides, nodes, out / k) for k in ("clean", "nodes")}
    cfgs["resumed"] = deployment_config(config, overrides, nodes, out / "resumed")
    rounds = cfgs["clean"].federation.rounds
    if rounds < max(s.restart_round, s.link_round):
        raise DeployError(f"bench-faults: rounds ({rounds}) ends before the schedule does")
    net, root = Network("bench"), out / "deployment"
    try:
        link = net.add("link")
        hosts = [net.add(f"node-{i}") for i in range(nodes)]
        certs(root, nodes, [link.address])
        ids = superlink(root, link.address, PORT, 300, link.netns)["node_ids"]
        supernodes(root, timeout=300, netns={i: h.netns for i, h in enumerate(hosts)})
        runs = {
            "clean": _one_run(net, root, cfgs["clean"], None, False),
            "nodes": _one_run(net, root, cfgs["nodes"], s, False),
            "resumed": _one_run(net, root, cfgs["resumed"], s, True),
        }
    finally:
        try:
            down(root)
        finally:
            net.close()
    name = node_name(ids[s.node])
    after = [r for r in runs["resumed"]["rows"] if r["round"] >= s.link_round]
    same = [r for r in runs["nodes"]["rows"] if r["round"] >= s.link_round]
    identical = [{k: a.get(k) for k in COMPARED} for a in after] == [
        {k: b.get(k) for k in COMPARED} for b in same
    ] and all(
        np.array_equal(a, b)
        for a, b in zip(_weights(out / "resumed"), _weights(out / "nodes"), strict=True)
    )
    result = {
        "schedule": vars(s),
        "nodes": nodes,
        "seconds": {k: v["seconds"] for k, v in runs.items()},
        "accuracy": {k: [r.get("accuracy") for r in v["rows"]] for k, v in runs.items()},
        "replies": {k: [r.get("replies") for r in v["rows"]] for k, v in runs.items()},
        "resumed_rounds_identical": identical,
        "events": {k: recorded_events(v["rows"]) for k, v in runs.items()},
        "events_match": {
            "nodes": recorded_events(runs["nodes"]["rows"]) == expected_events(s, name, False),
            "resumed": recorded_events(runs["resumed"]["rows"]) == expected_events(s, name, True),
        },
    }
    (out / "bench-faults.json").write_text(json.dumps(result, indent=2))
    (out / "bench-faults.md").write_text(table(result))
    return result


def table(result: dict[str, Any]) -> str:
    """The per-round Markdown table and the checks, as docs/scaling.md shows them."""
    acc, rep = result["accuracy"], result["replies"]
    lines = [
        "| round | clean | node killed/restarted | + SuperLink restarted | replies |",
        "|---|---|---|---|---|",
    ]
    for i, a in enumerate(acc["clean"]):
        b, c = acc["nodes"][i], acc["resumed"][i]
        lines.append(
            f"| {i + 1} | {a:.4f} | {b:.4f} | {c:.4f} | "
            f"{rep['clean'][i]}/{rep['nodes'][i]}/{rep['resumed'][i]} |"
        )
    sec = result["seconds"]
    lines += [
        "",
        f"wall seconds: clean {sec['clean']}, nodes {sec['nodes']}, resumed {sec['resumed']}",
        f"rounds after the resume bit-identical: {result['resumed_rounds_identical']}",
        f"fault events match the schedule: {result['events_match']}",
    ]
    return "\n".join(lines) + "\n"
