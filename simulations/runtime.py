"""The one module that knows how Flower's simulation runtime and Ray are started.

A Flower SuperNode here is an *execution slot*, not a client: the simulation
registers `clients-per-round` nodes and the server names, in each message, the
logical client (partition id) the slot trains as. Flower's simulation engine polls
every registered node every 0.1 s, so registering 100,000 nodes would make the
engine's own loop the bottleneck; registering slots makes the cost of a registered
client its index in the partition table and nothing more.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig
from learning.errors import PerennialError
from learning.training import cpu_count
from server.loop import RoundObserver


def backend_config(cfg: ExperimentConfig, ray_address: str | None = None) -> dict[str, Any]:
    """Ray resources: one worker per `cpus-per-client` CPUs, quiet, no dashboard."""
    rt = cfg.runtime
    init_args: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": bool(os.environ.get("PERENNIAL_RAY_LOGS")),
        "configure_logging": True,
    }
    if ray_address:
        init_args["address"] = ray_address
    else:
        # "local" always starts a fresh instance; without it Ray may try to join
        # whatever cluster /tmp/ray/ray_current_cluster last pointed at.
        init_args["address"] = "local"
        cpus = cpu_count()
        if rt.num_workers:
            cpus = min(cpus, int(rt.num_workers * rt.cpus_per_client + 0.999))
        init_args["num_cpus"] = max(1, cpus)
        if rt.gpus_per_client > 0:
            init_args["num_gpus"] = _visible_gpus()
        init_args["object_store_memory"] = 512 * 1024 * 1024
    return {
        "client_resources": {
            "num_cpus": rt.cpus_per_client,
            "num_gpus": rt.gpus_per_client,
        },
        "init_args": init_args,
    }


def _visible_gpus() -> int:
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if devices is not None:
        return len([d for d in devices.split(",") if d.strip()])
    return 1


def simulate(
    cfg: ExperimentConfig,
    run_dir: Path,
    on_round: RoundObserver | None = None,
    ray_address: str | None = None,
    verbose: bool = False,
    client_app: Any = None,
) -> dict[str, Any]:
    """Run the experiment in Flower's simulation runtime; returns the summary.

    `client_app` replaces perennial's ClientApp (the perf benchmark passes a
    quickstart-style one to compare both on the same runtime).
    """
    from learning.tf_import import import_tensorflow

    import_tensorflow()  # Flower's simulation module imports TensorFlow if present: mute it
    from flwr.simulation import run_simulation

    from server.app import build_server_app

    if client_app is None:
        from clients.app import app as client_app

    ray_address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if cfg.runtime.gpus_per_client == 0:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # CPU run: no GPU probing
    num_slots = cfg.federation.clients_per_round
    results: dict[str, Any] = {}
    server_app = build_server_app(
        cfg, run_dir, on_round=on_round, results=results, num_slots=num_slots
    )
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.CRITICAL)  # failures are counted in metrics.jsonl
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=num_slots,
                backend_config=backend_config(cfg, ray_address),
                verbose_logging=verbose,
            )
    except PerennialError:
        raise
    except Exception as exc:  # the runtime wraps the real cause; report that in one line
        raise SimulationError(f"simulation runtime failed: {_root_cause(exc)}") from exc
    finally:
        flwr_logger.setLevel(level)
    if not results:
        raise SimulationError("simulation ended without results; rerun with --verbose")
    return results


class SimulationError(PerennialError):
    """Flower's runtime or Ray failed; the message carries the underlying cause."""


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''} (rerun with --verbose for details)"
