"""`perennial perf`: the same client updates run three ways, timed side by side.

(a) bare        one process, a sequential loop over perennial's compiled trainer:
                the practical limit on this machine;
(b) perennial   the project's simulation (Flower runtime, Ray workers);
(c) quickstart  Flower's TensorFlow quickstart recipe on the same runtime: one
                SuperNode per client, `FedAvg.start`, a client that rebuilds,
                recompiles and `fit`s a fresh model per call.

Timed span for (b) and (c): the rounds' client-update phase as the server sees it
(first training message out to last reply aggregated), central evaluation and the
model-health statistics excluded because (a) has neither. Ray start-up, including each
worker importing TensorFlow, is reported apart as `*_startup_s` (the same for (b) and
(c)); (a) includes building and tracing its model, as (b) and (c) include their
workers' first use inside round 1.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig, build_config
from learning.federated_data import client_shard, dataset_for
from learning.streams import Tag, generator
from learning.training import get_trainer, initial_weights, to_float_images
from server.sampling import sample_clients
from simulations.memory import PeakMemory


def perf_config(overrides: list[str]) -> ExperimentConfig:
    """Defaults: 50 clients x 600 Fashion-MNIST samples, cnn, 1 epoch, batch 32, 3 rounds."""
    base = [
        "num-clients=50",
        "clients-per-round=50",
        "rounds=3",
        'partition="iid"',
        "train-subset=30000",
        "test-subset=1000",
        "local-epochs=1",
        "batch-size=32",
        "lr=0.05",
        'model="cnn"',
        "eval-every=1000",
    ]
    return build_config(None, base + list(overrides))


# `perennial perf --cohort`: cross-device cohorts (many small clients), issue 16's
# workload: 200 clients per round x 20 examples, lenet, batch 10, 3 rounds, pooled 25
# clients per message. Further `--set`s apply on top (clients-per-round, num-clients,
# partition="sampled" for 1,000,000 registered clients, clients-per-message=1 for the
# one-message-per-client baseline).
COHORT = [
    "num-clients=1000",
    "clients-per-round=200",
    "rounds=3",
    'partition="sampled"',
    "examples-per-client=20",
    "train-subset=0",
    'model="lenet"',
    "batch-size=10",
    "clients-per-message=25",
]


def run_bare(cfg: ExperimentConfig) -> float:
    """Sequential FedAvg over the same client updates in this process; seconds."""
    from clients.app import local_train_config

    fed = cfg.federation
    ds = dataset_for(cfg)
    sampled = {
        pid
        for rnd in range(1, fed.rounds + 1)
        for pid in sample_clients(fed.seed, rnd, fed.num_clients, fed.clients_per_round)
    }  # only the clients that train (a 1,000,000-client federation costs no table)
    shards = {pid: client_shard(cfg, pid) for pid in sorted(sampled)}
    shards = {pid: (to_float_images(x), y) for pid, (x, y) in shards.items()}
    weights = initial_weights(
        cfg.train.model, ds.input_shape, ds.num_classes, fed.seed, settings=cfg.plugin
    )
    started = time.perf_counter()
    trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
    for rnd in range(1, fed.rounds + 1):
        results = []
        for pid in sample_clients(fed.seed, rnd, fed.num_clients, fed.clients_per_round):
            x, y = shards[pid]
            rng = generator(fed.seed, Tag.LOCAL_TRAIN, rnd, pid)
            local = local_train_config(cfg, rnd)
            results.append(trainer.train(weights, x, y, local, rng))
        total = sum(r.num_examples for r in results)
        weights = [
            sum(r.weights[i] * (r.num_examples / total) for r in results)
            for i in range(len(weights))
        ]
    return time.perf_counter() - started


def run_perennial(cfg: ExperimentConfig, out: Path) -> dict[str, float]:
    """perennial's simulation; returns its client-update seconds, start-up, peak RSS."""
    from server.run_dir import prepare_run_dir, read_metrics
    from simulations.runtime import simulate

    run_dir = prepare_run_dir(out)
    started = time.perf_counter()
    with PeakMemory() as mem:
        summary = simulate(cfg, run_dir)
    total = time.perf_counter() - started
    rows = read_metrics(run_dir)
    updates = sum(r["train_seconds"] + r["aggregate_seconds"] for r in rows)
    return {
        "seconds": updates,
        "startup": max(0.0, total - summary.get("wall_seconds", 0.0)),
        "peak_rss_mb": mem.peak_mb,
        # the server process alone (sampled at the end of every round)
        "server_rss_mb": max((float(r.get("server_rss_mb") or 0.0) for r in rows), default=0.0),
    }


def run_quickstart(cfg: ExperimentConfig) -> dict[str, float]:
    """Flower's quickstart recipe on the same runtime; seconds of `FedAvg.start`."""
    from simulations.quickstart_baseline import quickstart_app, quickstart_server
    from simulations.runtime import run_apps

    out: dict[str, Any] = {}
    started = time.perf_counter()
    with PeakMemory() as mem:
        run_apps(
            cfg,
            lambda _slots: quickstart_server(cfg, out),
            quickstart_app,
            num_supernodes=cfg.federation.num_clients,
            size_threads=False,
        )
    total = time.perf_counter() - started
    return {
        "seconds": out["seconds"],
        "startup": max(0.0, total - out["seconds"]),
        "peak_rss_mb": mem.peak_mb,
    }


def run_perf(
    overrides: list[str], repeats: int, out_dir: Path, cohort: bool = False
) -> dict[str, Any]:
    """Side by side; `cohort`: the cross-device preset (COHORT), without the quickstart
    (one SuperNode per client at 200 per round measures Flower, not perennial)."""
    cfg = perf_config((COHORT if cohort else []) + list(overrides))
    fed = cfg.federation
    updates = fed.rounds * fed.clients_per_round
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "bare_s",
            "perennial_s",
            "quickstart_s",
            "perennial_startup_s",
            "quickstart_startup_s",
            "peak_rss_mb",
            "server_rss_mb",
        )
    }
    for rep in range(repeats):
        with PeakMemory() as mem:
            samples["bare_s"].append(run_bare(cfg))
        p = run_perennial(cfg, out_dir / f"rep{rep}-perennial")
        q = {"seconds": float("nan"), "startup": 0.0, "peak_rss_mb": 0.0}
        if not cohort:
            q = run_quickstart(cfg)
        samples["perennial_s"].append(p["seconds"])
        samples["quickstart_s"].append(q["seconds"])
        samples["perennial_startup_s"].append(p["startup"])
        samples["quickstart_startup_s"].append(q["startup"])
        samples["peak_rss_mb"].append(max(mem.peak_mb, p["peak_rss_mb"], q["peak_rss_mb"]))
        samples["server_rss_mb"].append(p["server_rss_mb"])
        print(
            f"repeat {rep + 1}/{repeats}: bare {samples['bare_s'][-1]:.1f}s  "
            f"perennial {p['seconds']:.1f}s  quickstart {q['seconds']:.1f}s",
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "clients": fed.clients_per_round,
        "rounds": fed.rounds,
        "client_updates": updates,
        "samples_per_client": len(client_shard(cfg, 0)[1]),
        "model": cfg.train.model,
        "repeats": repeats,
        "bare_s": round(med["bare_s"], 3),
        "perennial_s": round(med["perennial_s"], 3),
        "quickstart_s": round(med["quickstart_s"], 3),
        "perennial_startup_s": round(med["perennial_startup_s"], 3),
        "quickstart_startup_s": round(med["quickstart_startup_s"], 3),
        "overhead_vs_bare": round(med["perennial_s"] / med["bare_s"], 4),
        "speedup_vs_quickstart": round(med["quickstart_s"] / med["perennial_s"], 4),
        "client_updates_per_s": round(updates / med["perennial_s"], 3),
        "peak_rss_mb": round(med["peak_rss_mb"], 1),
        "server_rss_mb": round(med["server_rss_mb"], 1),
        "clients_per_message": fed.clients_per_message,
        "registered_clients": fed.num_clients,
        "bare_ms_per_update": round(1000 * med["bare_s"] / updates, 2),
        "perennial_ms_per_update": round(1000 * med["perennial_s"] / updates, 2),
        "all_repeats": {k: [round(x, 3) for x in v] for k, v in samples.items()},
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"perennial perf: {result['client_updates']} client updates "
        f"(median of {result['repeats']})"
    )
    t.add_column("way")
    t.add_column("seconds", justify="right")
    t.add_column("vs bare", justify="right")
    for way in ("bare", "perennial", "quickstart"):
        s = result[f"{way}_s"]
        t.add_row(way, f"{s:.2f}", f"{s / result['bare_s']:.2f}x")
    Console().print(t)
    print(
        f"overhead_vs_bare {result['overhead_vs_bare']:.3f}  "
        f"speedup_vs_quickstart {result['speedup_vs_quickstart']:.2f}  "
        f"client_updates_per_s {result['client_updates_per_s']:.2f}  "
        f"peak_rss_mb {result['peak_rss_mb']:.0f}  server_rss_mb {result['server_rss_mb']:.0f}"
    )
    print(
        f"ms per client update: bare {result['bare_ms_per_update']:.2f}  "
        f"perennial {result['perennial_ms_per_update']:.2f}  "
        f"(clients-per-message {result['clients_per_message']}, "
        f"{result['registered_clients']} registered clients)"
    )


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
