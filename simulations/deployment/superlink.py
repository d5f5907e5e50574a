"""The SuperLink: TLS, node authentication, the `flwr` connection, node registration."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from learning.errors import ConfigError
from simulations.deployment.certs import DeployFiles
from simulations.deployment.processes import (
    CONNECTION,
    DeployError,
    alive,
    bin,
    flwr,
    free_port,
    in_netns,
    json_tail,
    need_certs,
    port_free,
    process_env,
    read_state,
    start,
    stop_entries,
    tail,
    write_state,
)

# The TLS handshake, run inside the SuperLink's namespace (it is not reachable from here).
_PROBE = (
    "import socket, ssl, sys; h, p, ca = sys.argv[1:4]; "
    "c = ssl.create_default_context(cafile=ca); "
    "c.wrap_socket(socket.create_connection((h, int(p)), timeout=2), server_hostname=h)"
)


def answers_https(host: str, port: int, ca: Path, netns: str | None = None) -> bool:
    """Whether `host:port` completes a TLS handshake with a certificate our CA verifies
    (for that host name or address), seen from `netns` (None: from here)."""
    import ssl

    if netns:
        cmd = in_netns(netns, [sys.executable, "-c", _PROBE, host, str(port), str(ca)])
        try:
            return subprocess.run(cmd, capture_output=True, timeout=15).returncode == 0
        except subprocess.TimeoutExpired:
            return False
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection((host, port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except (OSError, ssl.SSLError):
        return False


def wait_https(host: str, port: int, ca: Path, entry: dict[str, Any], timeout: float) -> None:
    """Until the SuperLink answers HTTPS with a certificate our CA verifies."""
    deadline = time.monotonic() + timeout
    while True:
        if alive(entry) is None:
            raise DeployError(f"flower-superlink exited: {tail(entry['log'], 2)}")
        if answers_https(host, port, ca, entry.get("netns")):
            return
        if time.monotonic() > deadline:
            raise DeployError(f"SuperLink not up after {timeout:.0f} s: {tail(entry['log'])}")
        time.sleep(0.5)


def write_connection(files: DeployFiles, address: str) -> None:
    """The `flwr` CLI's connection `perennial`: the SuperLink address and our CA."""
    files.flwr_home.mkdir(parents=True, exist_ok=True)
    text = (
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f"[superlink.{CONNECTION}]\n"
        f'address = "{address}"\n'
        f'root-certificates = "{files.ca}"\n'
    )
    (files.flwr_home / "config.toml").write_text(text)


def register_node(files: DeployFiles, public_key: Path) -> int:
    """Register one SuperNode public key with the SuperLink; returns its node id."""
    out = flwr(["supernode", "register", str(public_key), CONNECTION, "--format", "json"], files)
    node_id = json_tail(out).get("node-id")
    if node_id is None:
        raise DeployError(f"registering {public_key} returned no node id: {out.strip()[-200:]}")
    return int(node_id)


DATABASE = "superlink.db"  # its state, so that a restarted SuperLink knows its nodes


def superlink(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 120,
    netns: str | None = None,
) -> dict[str, Any]:
    """Start flower-superlink (TLS, SuperNode auth; in network namespace `netns` if
    given) and register every node key. Its state lives in DIR/superlink.db, so a
    SuperLink restarted by `restart_superlink` keeps the registered nodes and their ids
    (a logical client stays the same SuperNode across the restart)."""
    files = DeployFiles(root.resolve())
    need_certs(files)
    nodes = files.num_node_keys()
    if nodes < 1:
        raise ConfigError(f"no SuperNode keys in {files.root / 'keys'}; run `deploy certs`")
    state = read_state(files)
    if state.get("superlink") and alive(state["superlink"]):
        raise ConfigError(f"a SuperLink of {root} is running; `perennial deploy down {root}`")
    port = port or free_port("127.0.0.1" if netns else host)
    if not netns and not port_free(host, port):  # a fresh namespace has every port free
        raise ConfigError(f"port {host}:{port} is in use; pick another --port")
    cmd = [
        bin("flower-superlink"),
        "--host",
        host,
        "--port",
        str(port),
        "--ssl-ca-certfile",
        str(files.ca),
        "--ssl-certfile",
        str(files.server_cert),
        "--ssl-keyfile",
        str(files.server_key),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",  # the environment is already complete
        "--database",
        str(files.root / DATABASE),
    ]
    (files.root / DATABASE).unlink(missing_ok=True)  # a new SuperLink: no old nodes or runs
    env = process_env(files.flwr_home)
    entry = start(cmd, files.logs / "superlink.log", env, files.root, netns)
    # Listening on every interface: talk to it over loopback (in the certificate's SAN).
    local = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    address = f"[{local}]:{port}" if ":" in local else f"{local}:{port}"
    entry["address"] = address
    entry["host"], entry["port"] = local, port
    state = {"superlink": entry, "supernodes": [], "nodes": nodes}
    write_state(files, state)
    try:
        wait_https(local, port, files.ca, entry, timeout)
        write_connection(files, address)
        entry["node_ids"] = [register_node(files, files.node_public_key(i)) for i in range(nodes)]
    except BaseException:
        stop_entries([entry])
        raise
    write_state(files, state)
    return entry


def restart_superlink(root: Path, timeout: float = 120) -> dict[str, Any]:
    """Start the recorded SuperLink again (same command, port, namespace and database),
    after stopping it if it still runs. Its SuperNodes reconnect by themselves (they
    retry) with the node ids the database kept; no key is registered again."""
    files = DeployFiles(root.resolve())
    state = read_state(files)
    old = state.get("superlink") or {}
    if "cmd" not in old:
        raise ConfigError(f"{root} has no SuperLink to restart; `perennial deploy superlink`")
    stop_entries([old])
    env = process_env(files.flwr_home)
    entry = start(old["cmd"], Path(old["log"]), env, files.root, old.get("netns"))
    entry.update({k: old[k] for k in ("address", "host", "port", "node_ids") if k in old})
    state["superlink"] = entry
    write_state(files, state)
    try:
        wait_https(old["host"], old["port"], files.ca, entry, timeout)
    except BaseException:
        stop_entries([entry])
        raise
    return entry
