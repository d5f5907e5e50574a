"""SuperNodes: one OS process per node, each with its key and its own data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from learning.datasets.client_folders import client_folder_count
from learning.errors import ConfigError
from simulations.deployment.certs import DeployFiles
from simulations.deployment.processes import (
    DeployError,
    alive,
    bin,
    free_port,
    need_certs,
    process_env,
    read_state,
    start,
    stop_entries,
    tail,
    write_state,
)


def supernode_command(
    files: DeployFiles,
    superlink_address: str,
    private_key: Path,
    node_config: str,
    port: int,
    ca: Path | None = None,
    max_wait: float | None = None,
) -> list[str]:
    """The flower-supernode command line of one node (TLS, its auth key, its data)."""
    cmd = [
        bin("flower-supernode"),
        "--superlink",
        superlink_address,
        "--root-certificates",
        str(ca or files.ca),
        "--auth-supernode-private-key",
        str(private_key),
        "--node-config",
        node_config,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if max_wait is not None:
        cmd += ["--max-retries", "3", "--max-wait-time", str(max_wait)]
    return cmd


def start_supernode(
    files: DeployFiles,
    name: str,
    cmd: list[str],
    home: Path | None = None,
    netns: str | None = None,
) -> dict[str, Any]:
    """Start one SuperNode with its own FLWR_HOME (each installs the app itself), in
    network namespace `netns` if given."""
    home = home or files.root / "nodes" / name
    entry = start(cmd, files.logs / f"{name}.log", process_env(home), files.root, netns)
    entry["name"] = name
    return entry


def _activations(entry: dict[str, Any]) -> int:
    """How often the SuperNode's log says it was activated (`SuperNode ID: ...`); a
    restarted node appends to the same log."""
    log = Path(entry["log"])
    return log.read_text(errors="replace").count("SuperNode ID:") if log.exists() else 0


def wait_connected(entries: list[dict[str, Any]], timeout: float) -> None:
    """Until every SuperNode's log says it was activated since it was started."""
    deadline = time.monotonic() + timeout
    waiting = list(entries)
    while waiting:
        for e in list(waiting):
            if _activations(e) > e.get("activations", 0):
                waiting.remove(e)
            elif alive(e) is None:
                raise DeployError(f"SuperNode exited ({e['log']}): {tail(e['log'], 2)}")
        if waiting and time.monotonic() > deadline:
            raise DeployError(
                f"{len(waiting)} SuperNode(s) not connected after {timeout:.0f} s: "
                f"{tail(waiting[0]['log'])}"
            )
        time.sleep(0.5)


def node_configs(
    n: int, data_paths: list[str] | None = None, client_folders: str | None = None
) -> list[str]:
    """The --node-config of each of `n` SuperNodes: partition i of n; or, with
    `data_paths`, all of the files at data_paths[i]; or, with `client_folders` (a
    client-folders tree, one SuperNode per client folder), client folder i of the tree
    at that path on the node's machine."""
    if data_paths and client_folders:
        raise ConfigError("give --data-path or --client-folders, not both")
    if data_paths:
        if len(data_paths) != n:
            raise ConfigError(f"--data-path given {len(data_paths)} times for {n} SuperNodes")
        return [f'data-path="{Path(p).resolve()}"' for p in data_paths]
    if client_folders:
        tree = Path(client_folders).expanduser().resolve()
        folders = client_folder_count(str(tree))
        if folders != n:
            raise ConfigError(
                f"{tree} holds {folders} client folders for {n} SuperNodes; start one "
                f"SuperNode per client folder (deploy certs --nodes {folders})"
            )
        return [f'data-path="{tree}" partition-id={i} num-partitions={n}' for i in range(n)]
    return [f"partition-id={i} num-partitions={n}" for i in range(n)]


def supernodes(
    root: Path,
    superlink_address: str | None = None,
    data_paths: list[str] | None = None,
    timeout: float = 120,
    only: list[int] | None = None,
    client_folders: str | None = None,
    netns: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Start one SuperNode per registered key, each with its data (`node_configs`).
    `only` starts just those node indices, e.g. the one this machine should run in a
    multi-machine deployment; `netns` puts node i in network namespace netns[i]."""
    files = DeployFiles(root.resolve())
    need_certs(files)
    state = read_state(files)
    address = superlink_address or (state.get("superlink") or {}).get("address")
    if not address:
        raise ConfigError("no SuperLink address; pass --superlink HOST:PORT or `deploy superlink`")
    n = files.num_node_keys()
    wanted = set(only) if only else set(range(n))
    if any(alive(e) and e.get("index", -1) in wanted for e in state.get("supernodes", [])):
        raise ConfigError(f"SuperNodes of {root} are running; `perennial deploy down {root}`")
    configs = node_configs(n, data_paths, client_folders)
    bad = [i for i in only or [] if not 0 <= i < n]
    if bad:
        raise ConfigError(f"--index {bad[0]} is not a SuperNode of {root} (0..{n - 1})")
    entries = []
    try:
        for i in sorted(set(only)) if only else range(n):
            node_config = configs[i]
            cmd = supernode_command(files, address, files.node_key(i), node_config, free_port())
            entry = start_supernode(files, f"supernode-{i}", cmd, netns=(netns or {}).get(i))
            entry["node_config"], entry["index"] = node_config, i
            entries.append(entry)
        state.setdefault("supernodes", []).extend(entries)
        state["nodes"] = n
        if not state.get("superlink"):
            state["superlink"] = {"address": address}
        write_state(files, state)
        wait_connected(entries, timeout)
    except BaseException:
        stop_entries(entries)
        raise
    return entries


ACTIVATION_REFUSED = "Failed to activate SuperNode"
RESTART_PAUSE = 3.0  # seconds between a refused activation and the next start


def restart_supernode(root: Path, index: int, timeout: float = 120) -> dict[str, Any]:
    """Start SuperNode `index` again with its recorded command (same key, data and
    namespace), stopping it first if it still runs, and wait until the SuperLink has
    activated it again (it re-authenticates with its key and keeps its node id); within
    Flower's heartbeat window after a death that takes up to a minute of refused starts."""
    files = DeployFiles(root.resolve())
    state = read_state(files)
    nodes = state.get("supernodes", [])
    found = [k for k, e in enumerate(nodes) if e.get("index") == index]
    if not found:
        raise ConfigError(f"SuperNode {index} of {root} was never started here")
    old = nodes[found[-1]]
    stop_entries([old])
    deadline = time.monotonic() + timeout
    while True:
        entry = start_supernode(files, old["name"], old["cmd"], netns=old.get("netns"))
        entry.update(node_config=old["node_config"], index=index, activations=_activations(old))
        nodes[found[-1]] = entry
        write_state(files, state)
        try:
            wait_connected([entry], max(1.0, deadline - time.monotonic()))
            return entry
        except DeployError as exc:
            # Flower refuses to activate a node id it still counts as online (its last
            # heartbeat is under 2 x 30 s old): a node that died a moment ago is let
            # back in once the SuperLink has marked it offline. Try again until then.
            if ACTIVATION_REFUSED not in tail(entry["log"], 40) or time.monotonic() > deadline:
                raise DeployError(f"SuperNode {index} did not rejoin: {exc}") from None
            time.sleep(RESTART_PAUSE)
