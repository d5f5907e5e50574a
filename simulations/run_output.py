"""What the run commands share: the preflight checks and the summary they print.

Used by `perennial run`/`bench` (cli.py) and `perennial deploy` (deployment/cli.py), so
neither imports the other's private helpers.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from learning.config import ExperimentConfig
from learning.plugin_objects import display
from learning.plugins import is_plugin


def preflight(cfg: ExperimentConfig, seen: set[tuple] | None = None) -> None:
    """Catch every name and data problem before anything is written or started.

    With `seen` (a bench's grid), each check runs once per distinct thing it checks: the
    data and split, a plug-in strategy or model with its [plugin] settings, a central-DP
    plan; a check already in `seen` is skipped, so a grid pays once per plug-in."""
    from learning.federated_data import dataset_for, partitions_for

    done = set() if seen is None else seen
    if seen is None and cfg.plugin and not plugins_named(cfg):
        print(
            "perennial: note: [plugin] settings are given but no key names a plug-in; "
            "nothing reads them",
            file=sys.stderr,
        )

    def first(*key: object) -> bool:
        new = key not in done
        done.add(key)
        return new

    ds = dataset_for(cfg)
    fed, t, plugin = cfg.federation, cfg.train, cfg.plugin
    if first("data", cfg.data, fed.num_clients, plugin):  # one seed's split tries the code
        partitions_for(cfg)
    if is_plugin(cfg.strategy.strategy) and first("strategy", cfg.strategy, plugin):
        from strategies.registry import build_strategy  # built once here: a bad class is one line

        build_strategy(cfg, fed.clients_per_round)
    shape = (ds.input_shape, ds.num_classes)
    if (is_plugin(t.model) or t.init_weights) and first(
        "model", t.model, t.init_weights, shape, plugin
    ):
        from learning.warm_start import initial_weights  # softmax probe, warm-start shapes

        initial_weights(t.model, ds.input_shape, ds.num_classes, 0, t.init_weights, settings=plugin)
    if cfg.strategy.strategy in ("fedbn", "fedrep", "apfl") and first(
        "personal", cfg.strategy.strategy, t.model, shape, plugin
    ):
        from learning.models import build_model
        from learning.personal_layers import check_personal_model

        model = build_model(t.model, ds.input_shape, ds.num_classes, plugin)
        check_personal_model(cfg.strategy.strategy, model, display(t.model))
    method = cfg.continual.cl_method
    if cfg.continual.scenario != "none" and method in ("fot", "target"):
        if first("continual-model", method, t.model, shape, plugin):
            from learning.continual_checks import check_continual_model
            from learning.models import build_model

            model = build_model(t.model, ds.input_shape, ds.num_classes, plugin)
            check_continual_model(method, model, display(t.model))
    unseeded = dataclasses.replace(fed, seed=0)  # the DP plan does not depend on the seed
    if cfg.privacy.dp == "central" and first("dp", cfg.privacy, unseeded, t.model, shape, plugin):
        from privacy.accounting import check_central_dp, check_secagg_clipping

        check_central_dp(cfg)
        if cfg.privacy.secure_aggregation:
            from learning.warm_start import initial_weights

            w = initial_weights(t.model, ds.input_shape, ds.num_classes, 0, settings=plugin)
            check_secagg_clipping(cfg, sum(a.size for a in w))


def plugins_named(cfg: ExperimentConfig) -> list[str]:
    """The registry-backed values that name plug-ins (model, dataset, partition, strategy)."""
    values = (cfg.train.model, cfg.data.dataset, cfg.data.partition, cfg.strategy.strategy)
    return [v for v in values if is_plugin(v)]


def print_summary(summary: dict, out: Path) -> None:
    """The run's headline numbers as a table, then where its files are."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="perennial run")
    table.add_column("final accuracy")
    table.add_column("best accuracy")
    table.add_column("rounds")
    table.add_column("wall time")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    local = "personalised_accuracy" in summary  # local-eval (docs/personalised.md)
    if local:
        for name in ("personalised", "worst 10%", "new clients"):
            table.add_column(name)
    table.add_row(
        fmt(summary.get("final_accuracy")),
        f"{fmt(summary.get('best_accuracy'))} (round {summary.get('best_round')})",
        str(summary.get("rounds_completed")),
        f"{summary.get('wall_seconds', 0):.1f} s",
        *(
            fmt(summary.get(k))
            for k in ("personalised_accuracy", "worst10_accuracy", "new_client_accuracy")
            if local
        ),
    )
    Console().print(table)
    print(f"results: {out}")


def write_run_report(run_dirs: list[Path], path: Path) -> None:
    """The HTML report over the run directories that hold metrics (others skipped)."""
    from simulations.report import write_report

    write_report([d for d in run_dirs if (d / "metrics.jsonl").exists()], path)
