"""The SuperLink: TLS, node authentication, the `flwr` connection, node registration."""

from __future__ import annotations

import socket
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


def wait_https(host: str, port: int, ca: Path, entry: dict[str, Any], timeout: float) -> None:
    """Until the SuperLink answers HTTPS with a certificate our CA verifies."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        if alive(entry) is None:
            raise DeployError(f"flower-superlink exited: {tail(entry['log'], 2)}")
        try:
            with socket.create_connection((host, port), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname=host):
                    return
        except (OSError, ssl.SSLError):
            pass
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


def superlink(
    root: Path, host: str = "127.0.0.1", port: int = 0, timeout: float = 120
) -> dict[str, Any]:
    """Start flower-superlink (TLS, SuperNode auth) and register every node key."""
    files = DeployFiles(root.resolve())
    need_certs(files)
    nodes = files.num_node_keys()
    if nodes < 1:
        raise ConfigError(f"no SuperNode keys in {files.root / 'keys'}; run `deploy certs`")
    state = read_state(files)
    if state.get("superlink") and alive(state["superlink"]):
        raise ConfigError(f"a SuperLink of {root} is running; `perennial deploy down {root}`")
    port = port or free_port(host)
    if not port_free(host, port):
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
    ]
    entry = start(cmd, files.logs / "superlink.log", process_env(files.flwr_home), files.root)
    # Listening on every interface: talk to it over loopback (in the certificate's SAN).
    local = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    address = f"[{local}]:{port}" if ":" in local else f"{local}:{port}"
    entry["address"] = address
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
