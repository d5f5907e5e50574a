"""`perennial deploy`: the experiment on a real Flower deployment, scripted.

A SuperLink (TLS, SuperNode authentication on) and SuperNodes run as separate OS
processes, as they would on separate machines; the experiment is submitted with
`flwr run` and its ServerApp writes the usual run directory. Everything lives under
one deployment directory DIR:

    certs/    CA, SuperLink certificate and key      (deploy certs)
    keys/     one OpenSSH ECDSA key pair per SuperNode (deploy certs)
    flwr-home/config.toml   the `flwr` CLI's SuperLink connection (deploy superlink)
    logs/     one log per process
    state.json  pid, start time and command of every process started, so that
              `deploy down` stops exactly those (and their children), nothing else.

Flower 1.42 serves the Fleet, Control and Runtime APIs of a SuperLink on one HTTPS
port (`--host/--port`); SuperNodes are registered through the Control API
(`flwr supernode register KEY.pub CONNECTION`) and refused unless registered.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from learning.config import ExperimentConfig, config_values, to_toml
from learning.errors import ConfigError, PerennialError
from simulations.certs import DeployFiles, make_all

CONNECTION = "perennial"  # name of the SuperLink connection in flwr-home/config.toml
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class DeployError(PerennialError):
    """A deployment process did not start, connect or finish; the message says which."""


# --- environment and processes -------------------------------------------------------


def _bin(name: str) -> str:
    """A Flower command from this interpreter's environment (else from PATH)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise DeployError(f"{name!r} not found; install flwr in this environment")
    return found


def _vendored_data_dir() -> str | None:
    try:
        from learning.datasets import vendored_fashion_mnist

        return str(vendored_fashion_mnist())
    except PerennialError:
        return None


def process_env(flwr_home: Path) -> dict[str, str]:
    """Environment of every process we start: our interpreter's bin first on PATH
    (SuperLink and SuperNode launch `flower-superexec` by name), this project on
    PYTHONPATH, the vendored data found, telemetry off, and a private FLWR_HOME."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["FLWR_HOME"] = str(flwr_home)
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data = _vendored_data_dir()
    if data and "PERENNIAL_DATA_DIR" not in env:
        env["PERENNIAL_DATA_DIR"] = data
    return env


def _start(cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Start `cmd` in its own session (so it outlives this CLI) and describe it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    return {
        "pid": proc.pid,
        "create_time": psutil.Process(proc.pid).create_time(),
        "cmd": cmd,
        "log": str(log),
    }


def read_state(files: DeployFiles) -> dict[str, Any]:
    if not files.state.is_file():
        return {}
    return json.loads(files.state.read_text())


def _write_state(files: DeployFiles, state: dict[str, Any]) -> None:
    files.state.write_text(json.dumps(state, indent=2))


def _alive(entry: dict[str, Any]) -> psutil.Process | None:
    """The recorded process if it still runs (same pid *and* start time), else None."""
    try:
        p = psutil.Process(entry["pid"])
        if abs(p.create_time() - entry["create_time"]) < 1.0 and p.status() != "zombie":
            return p
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        pass
    return None


def stop_entries(entries: list[dict[str, Any]], grace: float = 15.0) -> list[int]:
    """SIGTERM each recorded process and its descendants (SuperExec, ServerApp and
    ClientApp subprocesses), SIGKILL what lingers; returns the pids stopped."""
    procs: list[psutil.Process] = []
    for entry in entries:
        p = _alive(entry)
        if p is None:
            continue
        try:
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs.append(p)
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in procs]


def _tail(path: str | Path, lines: int = 1) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _flwr(args: list[str], files: DeployFiles, timeout: float = 120) -> str:
    """Run the `flwr` CLI against our connection; its stdout, or a one-line error."""
    proc = subprocess.run(
        [_bin("flwr"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=process_env(files.flwr_home),
        cwd=files.root,
    )
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise DeployError(f"`flwr {' '.join(args)}` failed: {' '.join(detail[-3:])}")
    return proc.stdout


def _json_tail(text: str) -> dict[str, Any]:
    """The JSON object `flwr --format json` prints (after any other output)."""
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


# --- deploy certs -------------------------------------------------------------------------


def certs(root: Path, nodes: int, hosts: list[str]) -> DeployFiles:
    """CA, SuperLink certificate and `nodes` SuperNode key pairs under `root`."""
    if nodes < 1:
        raise ConfigError(f"--nodes must be >= 1, got {nodes}")
    files = DeployFiles(root.resolve())
    if _running(files):
        raise ConfigError(f"{root} has running processes; `perennial deploy down {root}` first")
    make_all(files, nodes, hosts)
    return files


def _need_certs(files: DeployFiles) -> None:
    for path in (files.ca, files.server_cert, files.server_key):
        if not path.is_file():
            raise ConfigError(f"{path} not found; run `perennial deploy certs {files.root}` first")


def _running(files: DeployFiles) -> list[dict[str, Any]]:
    state = read_state(files)
    entries = [state.get("superlink") or {}, *state.get("supernodes", [])]
    return [e for e in entries if e and _alive(e)]


# --- deploy superlink ---------------------------------------------------------------------


def _wait_https(host: str, port: int, ca: Path, entry: dict[str, Any], timeout: float) -> None:
    """Until the SuperLink answers HTTPS with a certificate our CA verifies."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        if _alive(entry) is None:
            raise DeployError(f"flower-superlink exited: {_tail(entry['log'], 2)}")
        try:
            with socket.create_connection((host, port), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname=host):
                    return
        except (OSError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            raise DeployError(f"SuperLink not up after {timeout:.0f} s: {_tail(entry['log'])}")
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
    out = _flwr(["supernode", "register", str(public_key), CONNECTION, "--format", "json"], files)
    node_id = _json_tail(out).get("node-id")
    if node_id is None:
        raise DeployError(f"registering {public_key} returned no node id: {out.strip()[-200:]}")
    return int(node_id)


def superlink(
    root: Path, host: str = "127.0.0.1", port: int = 0, timeout: float = 120
) -> dict[str, Any]:
    """Start flower-superlink (TLS, SuperNode auth) and register every node key."""
    files = DeployFiles(root.resolve())
    _need_certs(files)
    nodes = files.num_node_keys()
    if nodes < 1:
        raise ConfigError(f"no SuperNode keys in {files.root / 'keys'}; run `deploy certs`")
    state = read_state(files)
    if state.get("superlink") and _alive(state["superlink"]):
        raise ConfigError(f"a SuperLink of {root} is running; `perennial deploy down {root}`")
    port = port or free_port(host)
    if not _port_free(host, port):
        raise ConfigError(f"port {host}:{port} is in use; pick another --port")
    cmd = [
        _bin("flower-superlink"),
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
    entry = _start(cmd, files.logs / "superlink.log", process_env(files.flwr_home), files.root)
    # Listening on every interface: talk to it over loopback (in the certificate's SAN).
    local = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    address = f"[{local}]:{port}" if ":" in local else f"{local}:{port}"
    entry["address"] = address
    state = {"superlink": entry, "supernodes": [], "nodes": nodes}
    _write_state(files, state)
    try:
        _wait_https(local, port, files.ca, entry, timeout)
        write_connection(files, address)
        entry["node_ids"] = [register_node(files, files.node_public_key(i)) for i in range(nodes)]
    except BaseException:
        stop_entries([entry])
        raise
    _write_state(files, state)
    return entry


# --- deploy supernodes --------------------------------------------------------------------


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
        _bin("flower-supernode"),
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
    files: DeployFiles, name: str, cmd: list[str], home: Path | None = None
) -> dict[str, Any]:
    """Start one SuperNode with its own FLWR_HOME (each installs the app itself)."""
    home = home or files.root / "nodes" / name
    return _start(cmd, files.logs / f"{name}.log", process_env(home), files.root)


def wait_connected(entries: list[dict[str, Any]], timeout: float) -> None:
    """Until every SuperNode's log says it was activated (`SuperNode ID: ...`)."""
    deadline = time.monotonic() + timeout
    waiting = list(entries)
    while waiting:
        for e in list(waiting):
            text = Path(e["log"]).read_text(errors="replace") if Path(e["log"]).exists() else ""
            if "SuperNode ID:" in text:
                waiting.remove(e)
            elif _alive(e) is None:
                raise DeployError(f"SuperNode exited ({e['log']}): {_tail(e['log'], 2)}")
        if waiting and time.monotonic() > deadline:
            raise DeployError(
                f"{len(waiting)} SuperNode(s) not connected after {timeout:.0f} s: "
                f"{_tail(waiting[0]['log'])}"
            )
        time.sleep(0.5)


def supernodes(
    root: Path,
    superlink_address: str | None = None,
    data_paths: list[str] | None = None,
    timeout: float = 120,
    only: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Start one SuperNode per registered key: node i trains on partition i of N
    (or, with `data_paths`, on the files at data_paths[i]). `only` starts just those
    node indices, e.g. the one this machine should run in a multi-machine deployment."""
    files = DeployFiles(root.resolve())
    _need_certs(files)
    state = read_state(files)
    address = superlink_address or (state.get("superlink") or {}).get("address")
    if not address:
        raise ConfigError("no SuperLink address; pass --superlink HOST:PORT or `deploy superlink`")
    if any(_alive(e) for e in state.get("supernodes", [])):
        raise ConfigError(f"SuperNodes of {root} are running; `perennial deploy down {root}`")
    n = files.num_node_keys()
    if data_paths and len(data_paths) != n:
        raise ConfigError(f"--data-path given {len(data_paths)} times for {n} SuperNodes")
    bad = [i for i in only or [] if not 0 <= i < n]
    if bad:
        raise ConfigError(f"--index {bad[0]} is not a SuperNode of {root} (0..{n - 1})")
    entries = []
    try:
        for i in sorted(set(only)) if only else range(n):
            if data_paths:
                node_config = f'data-path="{Path(data_paths[i]).resolve()}"'
            else:
                node_config = f"partition-id={i} num-partitions={n}"
            cmd = supernode_command(files, address, files.node_key(i), node_config, free_port())
            entry = start_supernode(files, f"supernode-{i}", cmd)
            entry["node_config"] = node_config
            entries.append(entry)
        state.setdefault("supernodes", []).extend(entries)
        state["nodes"] = n
        if not state.get("superlink"):
            state["superlink"] = {"address": address}
        _write_state(files, state)
        wait_connected(entries, timeout)
    except BaseException:
        stop_entries(entries)
        raise
    return entries


# --- deploy run ---------------------------------------------------------------------------


def deployment_config(
    config: str | None, overrides: list[str], nodes: int, out: Path
) -> ExperimentConfig:
    """The experiment for a deployment: the user's TOML and --set values, with
    federation-mode = deployment, num-clients / clients-per-round defaulting to the
    number of SuperNodes, and the run directory as an absolute out-dir (the ServerApp
    runs in another process and directory)."""
    values = config_values(config, overrides)
    values.setdefault("num-clients", nodes)
    values.setdefault("clients-per-round", min(nodes, int(values["num-clients"])))
    values["federation-mode"] = "deployment"
    values["out-dir"] = str(out.resolve())
    return ExperimentConfig.from_flat(values)


def _run_status(files: DeployFiles, run_id: int) -> str:
    try:
        out = _flwr(["ls", CONNECTION, "--run-id", str(run_id), "--format", "json"], files, 60)
    except (DeployError, subprocess.TimeoutExpired):
        return "unknown"
    runs = _json_tail(out).get("runs") or [{}]
    return str(runs[0].get("status", "unknown"))


def run(
    root: Path,
    cfg: ExperimentConfig,
    app: Path = PROJECT_ROOT,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Submit the experiment with `flwr run` and wait for its summary.json."""
    files = DeployFiles(root.resolve())
    if not (files.flwr_home / "config.toml").is_file():
        raise ConfigError(f"no SuperLink connection in {files.root}; run `deploy superlink`")
    if not (app / "pyproject.toml").is_file():
        raise ConfigError(f"{app} is not a Flower app (no pyproject.toml); pass --app")
    out = Path(cfg.runtime.out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"run directory {str(out)!r} already exists and is not empty")
    run_config = files.root / "run-config.toml"
    run_config.write_text(to_toml(cfg.to_nested()))  # Flower checks keys against pyproject's tables
    started = time.monotonic()
    text = _flwr(
        ["run", str(app), CONNECTION, "--run-config", str(run_config), "--format", "json"], files
    )
    run_id = _json_tail(text).get("run-id")
    if run_id is None:
        raise DeployError(f"`flwr run` started no run: {text.strip()[-300:]}")
    run_id = int(run_id)
    summary = out / "summary.json"
    next_check = time.monotonic() + 10
    while not summary.is_file():
        now = time.monotonic()
        if now - started > timeout:
            raise DeployError(f"run {run_id} not finished after {timeout:.0f} s")
        if now >= next_check:  # a failed run writes no summary: ask the SuperLink
            status = _run_status(files, run_id)
            if status.startswith("finished") and not summary.is_file():
                time.sleep(2)  # the summary may land just after the status changes
                if not summary.is_file():
                    raise DeployError(
                        f"run {run_id} ended as {status} without a summary; see "
                        f"`FLWR_HOME={files.flwr_home} flwr log {run_id} {CONNECTION}`"
                    )
            next_check = now + 10
        time.sleep(1)
    result = json.loads(summary.read_text())
    result["run_id"] = run_id
    result["deploy_wall_seconds"] = round(time.monotonic() - started, 1)
    return result


# --- deploy down / local ------------------------------------------------------------------


def down(root: Path) -> list[int]:
    """Stop every process `perennial deploy` started for `root` (and their children)."""
    files = DeployFiles(root.resolve())
    if not files.state.is_file():
        raise ConfigError(f"{root} has no state.json; nothing was started there")
    state = read_state(files)
    entries = [*state.get("supernodes", []), state.get("superlink") or {}]
    stopped = stop_entries([e for e in entries if e.get("pid")])
    state["supernodes"] = []
    state.pop("superlink", None)
    _write_state(files, state)
    return stopped


def local(root: Path, nodes: int, cfg: ExperimentConfig, timeout: float = 3600) -> dict[str, Any]:
    """certs -> superlink -> supernodes -> run -> down, all on this machine, for `cfg`
    (from `deployment_config`)."""
    files = certs(root, nodes, [])
    try:
        entry = superlink(files.root)
        print(f"perennial: SuperLink {entry['address']} (pid {entry['pid']})", flush=True)
        started = supernodes(files.root)
        print(f"perennial: {len(started)} SuperNodes connected", flush=True)
        return run(files.root, cfg, timeout=timeout)
    finally:
        down(files.root)
