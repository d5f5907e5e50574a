"""Processes of a scripted deployment: the Flower commands, their environment and pids.

state.json records every process started, so `deploy down` stops exactly those.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from learning.errors import ConfigError, PerennialError
from learning.plugin_objects import TRUST_ENV
from simulations.deployment.certs import DeployFiles, make_all

CONNECTION = "perennial"  # name of the SuperLink connection in flwr-home/config.toml
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DeployError(PerennialError):
    """A deployment process did not start, connect or finish; the message says which."""


def bin(name: str) -> str:
    """A Flower command from this interpreter's environment (else from PATH)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise DeployError(f"{name!r} not found; install flwr in this environment")
    return found


def vendored_data_dir() -> str | None:
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
    env.pop(TRUST_ENV, None)  # a SuperNode never unpickles what a server sends
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["FLWR_HOME"] = str(flwr_home)
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data = vendored_data_dir()
    if data and "PERENNIAL_DATA_DIR" not in env:
        env["PERENNIAL_DATA_DIR"] = data
    return env


def in_netns(netns: str | None, cmd: list[str]) -> list[str]:
    """`cmd` run inside network namespace `netns` (None: here); `ip netns exec` execs
    it, so the pid we record is the command's own."""
    return ["ip", "netns", "exec", netns, *cmd] if netns else cmd


def start(
    cmd: list[str], log: Path, env: dict[str, str], cwd: Path, netns: str | None = None
) -> dict[str, Any]:
    """Start `cmd` (in `netns`, if given) in its own session (so it outlives this CLI)
    and describe it; `cmd` is recorded as given, so a restart runs it again as it was."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            in_netns(netns, cmd),
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
        **({"netns": netns} if netns else {}),
    }


def read_state(files: DeployFiles) -> dict[str, Any]:
    if not files.state.is_file():
        return {}
    return json.loads(files.state.read_text())


def write_state(files: DeployFiles, state: dict[str, Any]) -> None:
    files.state.write_text(json.dumps(state, indent=2))


def alive(entry: dict[str, Any]) -> psutil.Process | None:
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
        p = alive(entry)
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
    _, lingering = psutil.wait_procs(procs, timeout=grace)
    for p in lingering:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(lingering, timeout=5)
    return [p.pid for p in procs]


def tail(path: str | Path, lines: int = 1) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def port_free(host: str, port: int) -> bool:
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


def flwr(args: list[str], files: DeployFiles, timeout: float = 120) -> str:
    """Run the `flwr` CLI against our connection (from the SuperLink's network
    namespace when it has one); its stdout, or a one-line error."""
    netns = (read_state(files).get("superlink") or {}).get("netns")
    proc = subprocess.run(
        in_netns(netns, [bin("flwr"), *args]),
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


def json_tail(text: str) -> dict[str, Any]:
    """The JSON object `flwr --format json` prints (after any other output)."""
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


def certs(root: Path, nodes: int, hosts: list[str]) -> DeployFiles:
    """CA, SuperLink certificate and `nodes` SuperNode key pairs under `root`."""
    if nodes < 1:
        raise ConfigError(f"--nodes must be >= 1, got {nodes}")
    files = DeployFiles(root.resolve())
    if running(files):
        raise ConfigError(f"{root} has running processes; `perennial deploy down {root}` first")
    make_all(files, nodes, hosts)
    return files


def need_certs(files: DeployFiles) -> None:
    for path in (files.ca, files.server_cert, files.server_key):
        if not path.is_file():
            raise ConfigError(f"{path} not found; run `perennial deploy certs {files.root}` first")


def running(files: DeployFiles) -> list[dict[str, Any]]:
    state = read_state(files)
    entries = [state.get("superlink") or {}, *state.get("supernodes", [])]
    return [e for e in entries if e and alive(e)]
