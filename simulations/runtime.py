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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig
from learning.config_schema import ASYNC_STRATEGIES
from learning.errors import PerennialError
from learning.plugin_objects import TRUST_ENV
from learning.tf_import import cpu_count


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
        # Workers import TensorFlow (and enable GPU memory growth) when they are created,
        # during start-up, instead of inside the first round's first client update.
        "actor": {"tensorflow": 1},
    }


def _visible_gpus() -> int:
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if devices is not None:
        return len([d for d in devices.split(",") if d.strip()])
    return 1


def simulate(
    cfg: ExperimentConfig,
    run_dir: Path,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    ray_address: str | None = None,
    verbose: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the experiment in Flower's simulation runtime; returns the summary."""
    from clients.app import app as client_app
    from server.app import build_server_app

    results: dict[str, Any] = {}

    def make_server(num_slots: int):
        return build_server_app(
            cfg, run_dir, on_round=on_round, results=results, num_slots=num_slots, resume=resume
        )

    run_apps(cfg, make_server, client_app, ray_address=ray_address, verbose=verbose)
    if not results:
        raise SimulationError("simulation ended without results; rerun with --verbose")
    return results


def run_apps(
    cfg: ExperimentConfig,
    make_server: Callable[[int], Any],
    client_app: Any,
    ray_address: str | None = None,
    verbose: bool = False,
    num_supernodes: int | None = None,
    size_threads: bool = True,
) -> None:
    """Start Ray, then run `make_server(num_slots)` with `client_app` on Flower's runtime.

    By default the runtime gets a few SuperNodes per Ray worker (execution slots); the perf
    benchmark's quickstart baseline passes `num_supernodes` to get Flower's usual one
    SuperNode per client, and `size_threads=False` to keep TensorFlow's default pools.
    """
    from learning.tf_import import import_tensorflow

    import_tensorflow()  # Flower's simulation module imports TensorFlow if present: mute it
    from flwr.simulation import run_simulation

    ray_address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if cfg.runtime.gpus_per_client == 0:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # CPU run: no GPU probing
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    config = backend_config(cfg, ray_address)
    workers = start_ray(cfg, config["init_args"], size_threads=size_threads)
    if cfg.privacy.secure_aggregation and not num_supernodes:
        from privacy.secagg.round import secagg_nodes

        num_supernodes = secagg_nodes(cfg)  # SecAgg+ keeps protocol state per node
    num_slots = num_supernodes or execution_slots(cfg, workers)
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.CRITICAL)  # failures are counted in metrics.jsonl
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_simulation(
                server_app=make_server(num_slots),
                client_app=client_app,
                num_supernodes=num_slots,
                backend_config=config,
                verbose_logging=verbose,
            )
    except PerennialError:
        raise
    except Exception as exc:  # the runtime wraps the real cause; report that in one line
        raise SimulationError(f"simulation runtime failed: {_root_cause(exc)}") from exc
    finally:
        flwr_logger.setLevel(level)


# Flower's simulation engine takes at most one message per SuperNode per 0.1 s
# (flwr/server/superlink/fleet/vce/vce_api.py, add_messages_to_queue), so with one slot
# per worker a worker trains at most ten clients a second however small they are, and
# waits up to 0.1 s for every send. A few slots per worker keep the workers' queue full;
# which slot trains a client changes no result (the client is named in the message).
SLOTS_PER_WORKER = 4


def execution_slots(cfg: ExperimentConfig, workers: int) -> int:
    """SuperNodes to register: the clients one send can hold, at most 4 per worker."""
    cohort = cfg.federation.clients_per_round
    if cfg.strategy.strategy in ASYNC_STRATEGIES:
        cohort = cfg.devices.concurrency
    return max(1, min(cohort, SLOTS_PER_WORKER * workers))


def start_ray(cfg: ExperimentConfig, init_args: dict[str, Any], size_threads: bool = True) -> int:
    """Start (or join) Ray ourselves and return how many workers it can host.

    Flower's backend skips `ray.init` when Ray is already up, so starting it here lets
    us size the execution slots to the real worker count, local or on a cluster, and
    give the workers TensorFlow thread pools sized to their CPUs (TF_NUM_*_THREADS are
    read when TensorFlow starts, which is at worker creation).
    """
    import sys

    import ray

    if not ray.is_initialized():
        # MALLOC_ARENA_MAX: glibc gives every thread its own arena by default, and
        # TensorFlow's many threads then hold freed message buffers; two arenas bound it.
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "MALLOC_ARENA_MAX": "2"}
        env[TRUST_ENV] = "1"  # the driver's own workers load its by-value plug-ins
        if size_threads:
            threads = max(1, int(cfg.runtime.cpus_per_client))
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
            env["TF_NUM_INTEROP_THREADS"] = str(min(threads, 2))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ray.init(runtime_env={"env_vars": env}, **init_args)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = init_args.get("address", "local")
            raise SimulationError(
                f"cannot start or reach Ray at {where!r}: {str(exc).splitlines()[0]}; "
                "check --ray-address / RAY_ADDRESS"
            ) from None
    rt = cfg.runtime
    workers = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        fits = int(res.get("CPU", 0) // rt.cpus_per_client)
        if rt.gpus_per_client > 0:
            fits = min(fits, int(res.get("GPU", 0) // rt.gpus_per_client))
        workers += fits
    if rt.num_workers:
        workers = min(workers, rt.num_workers)
    if workers < 1:
        ray.shutdown()
        raise SimulationError(
            f"no Ray node can host a worker with cpus-per-client={rt.cpus_per_client} and "
            f"gpus-per-client={rt.gpus_per_client}; lower them"
        )
    return workers


class SimulationError(PerennialError):
    """Flower's runtime or Ray failed; the message carries the underlying cause."""


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''} (rerun with --verbose for details)"
