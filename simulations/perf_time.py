"""`perennial perf --time`: the wall time a client update costs on the virtual clock.

The same workload (issue 15's grid base: lenet, 100 clients of Fashion-MNIST, 10 at a
time) runs five ways one after another in this process, each on the same Ray runtime:

    sync           today's barrier, no device model (the reference)
    sync-clock     the barrier on a heterogeneous clock (lognormal devices, 10% 10x
                   slower, diurnal availability)
    deadline       the same clock, 15 s deadline, over-selection 1.3
    fedbuff        the same clock, 10 in flight, a step every 5 updates
    fedasync       the same clock, 10 in flight, a step every update

Every way checkpoints once per 10 applied updates, as sync does (a round of 10):
FedBuff every 2 server steps, FedAsync every 10 (`checkpoint-every`; a checkpoint of an
asynchronous run also holds the updates in flight, about 10 models here).

Each way applies about the same number of client updates (`UPDATES`); the figure is the
loop's wall seconds (start-up excluded, one final evaluation in each) over the updates
that entered the model (the rows' `replies`), and its ratio to `sync`. Nothing sleeps,
so a ratio above 1 is the scheduler's own cost, except for `deadline`, which also
trains the over-selected and late clients it then discards (a cost of the policy).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from learning.config import build_config

UPDATES = 200
BASE = [
    'model="lenet"',
    "num-clients=100",
    "clients-per-round=10",
    "train-subset=12000",
    "test-subset=2000",
    'partition="dirichlet"',
    "alpha=0.5",
    "local-epochs=1",
    "batch-size=32",
    "lr=0.05",
    "eval-every=100000",
]
CLOCK = [
    'device-profile="lognormal"',
    "example-seconds=0.05",
    "speed-sigma=0.5",
    "slow-fraction=0.1",
    "slow-factor=10.0",
    'availability="diurnal"',
    "diurnal-period=3600.0",
    "duty-cycle=0.6",
]
WAYS: dict[str, list[str]] = {
    "sync": [f"rounds={UPDATES // 10}"],
    "sync-clock": [*CLOCK, f"rounds={UPDATES // 10}"],
    "deadline": [
        *CLOCK,
        f"rounds={UPDATES // 10}",
        'round-policy="deadline"',
        "round-deadline=15.0",
        "over-selection=1.3",
    ],
    "fedbuff": [
        *CLOCK,
        'strategy="fedbuff"',
        f"rounds={UPDATES // 5}",
        "concurrency=10",
        "fedbuff-k=5",
        "checkpoint-every=2",
    ],
    "fedasync": [
        *CLOCK,
        'strategy="fedasync"',
        f"rounds={UPDATES}",
        "concurrency=10",
        "checkpoint-every=10",
    ],
}


def run_time_perf(
    overrides: list[str], repeats: int, out_dir: Path, ways: list[str] | None = None
) -> dict[str, Any]:
    """Every way (or `ways`) `repeats` times, interleaved; medians of ms per update."""
    from server.run_dir import prepare_run_dir, read_metrics
    from simulations.runtime import simulate

    chosen = {w: WAYS[w] for w in (ways or list(WAYS))}
    ms: dict[str, list[float]] = {w: [] for w in chosen}
    trained: dict[str, int] = {}  # updates applied
    for rep in range(repeats):
        for way, keys in chosen.items():
            cfg = build_config(None, BASE + keys + list(overrides))
            run_dir = prepare_run_dir(out_dir / f"rep{rep}-{way}")
            t0 = time.perf_counter()
            summary = simulate(cfg, run_dir)
            wall = float(summary.get("wall_seconds") or time.perf_counter() - t0)
            n = sum(int(r.get("replies") or 0) for r in read_metrics(run_dir))
            trained[way] = n
            ms[way].append(1000.0 * wall / max(n, 1))
            print(f"repeat {rep + 1}/{repeats} {way}: {n} updates, {wall:.1f} s", flush=True)
    med = {w: statistics.median(v) for w, v in ms.items()}
    return {
        "repeats": repeats,
        "updates": trained,
        "ms_per_update": {w: round(v, 2) for w, v in med.items()},
        "vs_sync": {w: round(v / med.get("sync", v), 3) for w, v in med.items()},
        "all_repeats": {w: [round(x, 2) for x in v] for w, v in ms.items()},
    }


def print_time_table(result: dict[str, Any]) -> None:
    print(f"ms of wall time per applied client update (median of {result['repeats']}):")
    for way, v in result["ms_per_update"].items():
        n = result["updates"][way]
        print(f"  {way:<11} {v:8.2f} ms  {result['vs_sync'][way]:.3f}x sync  ({n} updates)")
