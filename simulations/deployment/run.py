"""Submitting the experiment with `flwr run`, waiting for it, and taking it all down."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from learning.config import (
    ExperimentConfig,
    absolute_path,
    build_config,
    config_values,
    read_toml,
    to_toml,
)
from learning.config_checks import NATURAL
from learning.datasets.client_folders import client_folder_count
from learning.errors import ConfigError
from learning.plugin_settings import PREFIX, TABLE
from simulations.deployment.certs import DeployFiles
from simulations.deployment.processes import (
    CONNECTION,
    PROJECT_ROOT,
    DeployError,
    alive,
    certs,
    flwr,
    json_tail,
    read_state,
    stop_entries,
    write_state,
)
from simulations.deployment.superlink import superlink
from simulations.deployment.supernodes import supernodes


def deployment_config(
    config: str | None, overrides: list[str], nodes: int, out: Path
) -> ExperimentConfig:
    """The experiment for a deployment: the user's TOML and --set values, with
    federation-mode = deployment, num-clients / clients-per-round defaulting to the
    number of SuperNodes, data-path and the run directory made absolute (the ServerApp
    and the SuperNodes run in other processes and directories). With client-folders
    each SuperNode is one client folder, so `nodes` must be the folder count."""
    values = config_values(config, overrides)
    if isinstance(values.get("data-path"), str):
        values["data-path"] = absolute_path(values["data-path"])
    if values.get("dataset") == NATURAL and values.get("data-path"):
        folders = client_folder_count(values["data-path"])
        if folders != nodes:
            raise ConfigError(
                f"{values['data-path']} holds {folders} client folders for {nodes} "
                f"SuperNodes; start one SuperNode per client folder (--nodes {folders})"
            )
    values.setdefault("num-clients", nodes)
    given = values["num-clients"]
    values.setdefault("clients-per-round", min(nodes, given) if type(given) is int else nodes)
    values["federation-mode"] = "deployment"
    values["out-dir"] = str(out.resolve())
    return ExperimentConfig.from_flat(values)


def default_nodes(config: str | None, overrides: list[str], fallback: int = 3) -> int:
    """SuperNodes `deploy local` starts without --nodes: one per client folder under
    client-folders, else `fallback`."""
    values = config_values(config, overrides)
    path = values.get("data-path")
    if values.get("dataset") == NATURAL and isinstance(path, str) and path:
        return client_folder_count(path)
    return fallback


def check_declared(app: Path, cfg: ExperimentConfig) -> None:
    """Every [plugin] setting must be declared in the app's pyproject.toml: `flwr run`
    refuses run-config keys its app does not declare (under [tool.flwr.app.config])."""
    if not cfg.plugin:
        return
    declared = read_toml(app / "pyproject.toml", "Flower app file")
    table = declared.get("tool", {}).get("flwr", {}).get("app", {}).get("config", {})
    known = set(table.get(TABLE, {})) if isinstance(table.get(TABLE), dict) else set()
    for name, value in cfg.plugin.items():
        if name not in known:
            raise ConfigError(
                f"plug-in setting {PREFIX}{name} is not declared in {app / 'pyproject.toml'}: "
                f"`flwr run` refuses run-config keys its app does not declare; add "
                f"`{to_toml({name: value}).strip()}` under [tool.flwr.app.config.{TABLE}] there"
            )


LINK_PATIENCE = 60.0  # seconds without an answer from the SuperLink before giving up


def run_status(files: DeployFiles, run_id: int) -> str:
    try:
        out = flwr(["ls", CONNECTION, "--run-id", str(run_id), "--format", "json"], files, 60)
    except (DeployError, subprocess.TimeoutExpired):
        return "unknown"
    runs = json_tail(out).get("runs") or [{}]
    return str(runs[0].get("status", "unknown"))


def resume_config(run_dir: Path) -> ExperimentConfig:
    """The config that continues an interrupted deployment run in `run_dir`: its own
    config.toml with deploy-resume on (the ServerApp then loads the checkpoint, and the
    server key, from the run directory). Refused in one line if there is nothing to
    resume."""
    from server.checkpoint import load_checkpoint

    run_dir = Path(run_dir).resolve()
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory (no config.toml)")
    if (run_dir / "summary.json").is_file():
        raise ConfigError(f"{str(run_dir)!r} already finished; nothing to resume")
    cfg = build_config(run_dir / "config.toml")
    if cfg.federation.federation_mode != "deployment":
        raise ConfigError(f"{str(run_dir)!r} is a simulation; `perennial run --resume` it")
    load_checkpoint(run_dir)  # one line if it stopped before its first checkpoint
    return cfg.replace(deploy_resume=True, out_dir=str(run_dir))


def run(
    root: Path,
    cfg: ExperimentConfig,
    app: Path = PROJECT_ROOT,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Submit the experiment with `flwr run` and wait for its summary.json (with
    deploy-resume: continue its run directory). If the SuperLink stops answering for
    `LINK_PATIENCE` seconds the wait ends in one line that says how to resume."""
    files = DeployFiles(root.resolve())
    if not (files.flwr_home / "config.toml").is_file():
        raise ConfigError(f"no SuperLink connection in {files.root}; run `deploy superlink`")
    if not (app / "pyproject.toml").is_file():
        raise ConfigError(f"{app} is not a Flower app (no pyproject.toml); pass --app")
    out = Path(cfg.runtime.out_dir)
    if not cfg.deploy.deploy_resume and out.exists() and any(out.iterdir()):
        raise ConfigError(f"run directory {str(out)!r} already exists and is not empty")
    check_declared(app, cfg)
    if cfg.deploy.deploy_resume:
        stop_interrupted(files, out)
    run_config = files.root / "run-config.toml"
    run_config.write_text(to_toml(cfg.to_nested()))  # Flower checks keys against pyproject's tables
    started = time.monotonic()
    text = flwr(
        ["run", str(app), CONNECTION, "--run-config", str(run_config), "--format", "json"], files
    )
    run_id = json_tail(text).get("run-id")
    if run_id is None:
        raise DeployError(f"`flwr run` started no run: {text.strip()[-300:]}")
    run_id = int(run_id)
    state = read_state(files)
    state.setdefault("runs", {})[str(out.resolve())] = run_id
    write_state(files, state)
    summary = out / "summary.json"
    next_check = time.monotonic() + 10
    answered = time.monotonic()
    while not summary.is_file():
        now = time.monotonic()
        if now - started > timeout:
            raise DeployError(f"run {run_id} not finished after {timeout:.0f} s")
        if now >= next_check:  # a failed run writes no summary: ask the SuperLink
            status = run_status(files, run_id)
            if status != "unknown":
                answered = now
            link = read_state(files).get("superlink") or {}
            gone = "pid" in link and alive(link) is None  # started here, and it died
            if (gone or now - answered > LINK_PATIENCE) and not summary.is_file():
                raise DeployError(
                    f"the SuperLink {'exited' if gone else 'stopped answering'}; run {run_id} "
                    f"stopped after its last checkpoint. Restart it (`perennial deploy "
                    f"superlink {root} --restart`) and continue with "
                    f"`perennial deploy run {root} --resume {out}`"
                )
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


def stop_interrupted(files: DeployFiles, out: Path) -> None:
    """Stop the Flower run that last wrote `out` (recorded in state.json), so that the
    SuperLink drops the messages it still holds for it: a SuperNode would otherwise
    train on the dead run's round before the resumed run's. Best effort: a SuperLink
    that lost its database has nothing to drop."""
    previous = read_state(files).get("runs", {}).get(str(out.resolve()))
    if previous is None:
        return
    try:
        flwr(["stop", str(previous), CONNECTION], files, 60)
    except (DeployError, subprocess.TimeoutExpired):
        pass


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
    write_state(files, state)
    return stopped


def local(root: Path, nodes: int, cfg: ExperimentConfig, timeout: float = 3600) -> dict[str, Any]:
    """certs -> superlink -> supernodes -> run -> down, all on this machine, for `cfg`
    (from `deployment_config`); under client-folders SuperNode i gets client folder i."""
    files = certs(root, nodes, [])
    tree = cfg.data.data_path if cfg.data.dataset == NATURAL else None
    try:
        entry = superlink(files.root)
        print(f"perennial: SuperLink {entry['address']} (pid {entry['pid']})", flush=True)
        started = supernodes(files.root, client_folders=tree)
        print(f"perennial: {len(started)} SuperNodes connected", flush=True)
        return run(files.root, cfg, timeout=timeout)
    finally:
        down(files.root)
