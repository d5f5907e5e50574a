"""What the run commands share: the preflight checks and the summary they print.

Used by `perennial run`/`bench` (cli.py) and `perennial deploy` (deployment/cli.py), so
neither imports the other's private helpers.
"""

from __future__ import annotations

from pathlib import Path

from learning.config import ExperimentConfig
from learning.plugins import is_plugin


def preflight(cfg: ExperimentConfig) -> None:
    """Catch every name and data problem before anything is written or started."""
    from learning.federated_data import dataset_for, partitions_for

    ds = dataset_for(cfg)
    partitions_for(cfg)
    if is_plugin(cfg.strategy.strategy):  # built once here: a bad class is one line
        from strategies.registry import build_strategy

        build_strategy(cfg, cfg.federation.clients_per_round)
    t = cfg.train
    if is_plugin(t.model) or t.init_weights:  # softmax probe, warm-start shapes
        from learning.training import initial_weights

        initial_weights(t.model, ds.input_shape, ds.num_classes, 0, t.init_weights)
    if cfg.privacy.dp == "central":
        from privacy.accounting import check_central_dp, check_secagg_clipping

        check_central_dp(cfg)
        if cfg.privacy.secure_aggregation:
            from learning.training import initial_weights

            ds = dataset_for(cfg)
            w = initial_weights(cfg.train.model, ds.input_shape, ds.num_classes, 0)
            check_secagg_clipping(cfg, sum(a.size for a in w))


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
    table.add_row(
        fmt(summary.get("final_accuracy")),
        f"{fmt(summary.get('best_accuracy'))} (round {summary.get('best_round')})",
        str(summary.get("rounds_completed")),
        f"{summary.get('wall_seconds', 0):.1f} s",
    )
    Console().print(table)
    print(f"results: {out}")


def write_run_report(run_dirs: list[Path], path: Path) -> None:
    """The HTML report over the run directories that hold metrics (others skipped)."""
    from simulations.report import write_report

    write_report([d for d in run_dirs if (d / "metrics.jsonl").exists()], path)
