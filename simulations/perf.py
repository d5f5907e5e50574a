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

Two figures compare (a) and (b), side by side: the whole run (every round, warm-up
included, as above) and the steady state: the rounds after the first, timed per round
the same way on both sides (bare: each round's training loop and FedAvg; perennial:
each round's `train_seconds + aggregate_seconds` from metrics.jsonl). Round 1 is left
out of both: there (a) builds and traces its model, (b)'s workers load the data and
trace theirs. Same updates, clients, examples, model and batch on both sides.
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
from learning.training import get_trainer, to_float_images
from learning.warm_start import initial_weights
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


def run_bare(cfg: ExperimentConfig) -> list[float]:
    """Sequential FedAvg over the same client updates in this process; seconds per
    round (round 1 includes building and tracing the model)."""
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
    rounds: list[float] = []
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
        now = time.perf_counter()
        rounds.append(now - started)
        started = now
    return rounds


def steady(rounds: list[float]) -> float | None:
    """Seconds of the rounds after the first (None: a one-round run has none)."""
    return float(sum(rounds[1:])) if len(rounds) > 1 else None


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
    rounds = [r["train_seconds"] + r["aggregate_seconds"] for r in rows]
    return {
        "seconds": sum(rounds),
        "rounds": rounds,
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
    per_round: dict[str, list[list[float]]] = {"bare": [], "perennial": []}
    for rep in range(repeats):
        with PeakMemory() as mem:
            bare_rounds = run_bare(cfg)
        samples["bare_s"].append(sum(bare_rounds))
        p = run_perennial(cfg, out_dir / f"rep{rep}-perennial")
        per_round["bare"].append(bare_rounds)
        per_round["perennial"].append(p["rounds"])
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
    result = {
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
    result.update(steady_figures(per_round, fed.clients_per_round))
    return result


def steady_figures(per_round: dict[str, list[list[float]]], clients: int) -> dict[str, Any]:
    """The steady state (rounds after the first) of bare and perennial, each repeat's
    seconds summed over those rounds, medians over repeats, and their ratio; every
    repeat's per-round seconds are kept (`*_round_s`) so the figure can be checked."""
    out: dict[str, Any] = {}
    for way, repeats in per_round.items():
        out[f"{way}_round_s"] = [[round(x, 3) for x in r] for r in repeats]
    rounds = min((len(r) for r in per_round["bare"]), default=0)
    if rounds < 2 or not per_round["perennial"]:
        return {**out, "steady_rounds": 0}
    med = {way: statistics.median(steady(r) for r in v) for way, v in per_round.items()}
    updates = clients * (rounds - 1)
    return {
        **out,
        "steady_rounds": rounds - 1,
        "bare_steady_s": round(med["bare"], 3),
        "perennial_steady_s": round(med["perennial"], 3),
        "steady_overhead_vs_bare": round(med["perennial"] / med["bare"], 4),
        "bare_steady_ms_per_update": round(1000 * med["bare"] / updates, 2),
        "perennial_steady_ms_per_update": round(1000 * med["perennial"] / updates, 2),
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
    Console().print(per_update_table(result))


def per_update_table(result: dict[str, Any]):
    """Whole run and steady state side by side: ms per client update and the ratio."""
    from rich.table import Table

    t = Table(title=f"ms per client update, bare vs perennial (median of {result['repeats']})")
    for name in ("figure", "rounds", "bare", "perennial", "perennial / bare"):
        t.add_column(name, justify="left" if name == "figure" else "right")
    rounds = result["rounds"]
    t.add_row(
        "whole run",
        f"1-{rounds}",
        f"{result['bare_ms_per_update']:.2f}",
        f"{result['perennial_ms_per_update']:.2f}",
        f"{result['overhead_vs_bare']:.2f}x",
    )
    if result.get("steady_rounds"):
        t.add_row(
            "steady state",
            f"2-{rounds}",
            f"{result['bare_steady_ms_per_update']:.2f}",
            f"{result['perennial_steady_ms_per_update']:.2f}",
            f"{result['steady_overhead_vs_bare']:.2f}x",
        )
    else:
        t.add_row("steady state", "-", "n/a (one round)", "", "")
    return t


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
