"""The Flower ServerApp. `app` is what `flwr run .` loads; the CLI builds its own
instance with the resolved config, run directory and a progress observer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from learning.config import ExperimentConfig
from learning.continual_checks import SERVER_METHODS, check_continual_model
from learning.federated_data import dataset_for, partition_histograms
from learning.models import build_model
from learning.personal_layers import check_personal_model
from learning.plugin_objects import display
from privacy.release import guarded
from server.checkpoint import load_checkpoint
from server.continual import TaskEvaluator
from server.continual_methods import cost_summary
from server.evaluation import CentralEvaluator
from server.export import BestKeeper, write_exports
from server.loop import run_rounds
from server.personal_summary import personal_summary
from server.pipeline.async_scheduler import is_async
from server.plots import plot_accuracy, plot_accuracy_matrix, plot_partition, plot_task_accuracy
from server.run_dir import RunRecorder, prepare_run_dir
from server.tensorboard import TensorBoardWriter


def summarise(rows: list[dict[str, Any]], wall_seconds: float, cfg: ExperimentConfig) -> dict:
    evaluated = [r for r in rows if r.get("accuracy") is not None]
    best = max(evaluated, key=lambda r: r["accuracy"]) if evaluated else None
    per_node: dict[str, int] = {}
    for r in rows:
        for node, n in (r.get("updates_per_node") or {}).items():
            per_node[node] = per_node.get(node, 0) + n
    return {
        **({"updates_per_node": per_node} if per_node else {}),  # withheld under central DP
        "final_accuracy": evaluated[-1]["accuracy"] if evaluated else None,
        "final_loss": evaluated[-1]["loss"] if evaluated else None,
        "best_accuracy": best["accuracy"] if best else None,
        "best_round": best["round"] if best else None,
        "rounds_completed": len(rows),
        "wall_seconds": round(wall_seconds, 2),
        "strategy": display(cfg.strategy.strategy),  # a pickled plug-in: its name only
        "dataset": display(cfg.data.dataset),
        "num_clients": cfg.federation.num_clients,
        "clients_per_round": cfg.federation.clients_per_round,
        "seed": cfg.federation.seed,
        **_privacy_summary(rows, cfg),
        **_fault_summary(rows),
    }


def _fault_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A deployment's fault events, each with its round (none: nothing added)."""
    events = [{"round": r["round"], **e} for r in rows for e in r.get("fault_events") or []]
    return {"fault_events": events} if events else {}


def _privacy_summary(rows: list[dict[str, Any]], cfg: ExperimentConfig) -> dict[str, Any]:
    p = cfg.privacy
    out: dict[str, Any] = {"dp": p.dp, "secure_aggregation": p.secure_aggregation}
    if p.dp == "central" and rows:
        last = rows[-1]
        out.update(
            epsilon=last.get("epsilon"),
            epsilon_pld=last.get("epsilon_pld"),
            accountant="RDP (epsilon) and PLD (epsilon_pld)"
            + ("; noise-multiplier solved with the tighter" if p.target_epsilon > 0 else ""),
            delta=p.delta,
            noise_multiplier=last.get("noise_multiplier"),
            clipping_norm=last.get("clipping_norm"),
        )
    if p.dp == "local":
        from privacy.client_mods import local_noise_std

        out.update(
            local_epsilon_per_round=p.local_epsilon,
            local_delta=p.local_delta,
            local_noise_std=local_noise_std(p.clipping_norm, p.local_epsilon, p.local_delta),
        )
    return out


def run_experiment(
    grid: Grid,
    cfg: ExperimentConfig,
    run_dir: Path,
    num_slots: int,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train, record every round into `run_dir`, write summary, exported models
    (model.keras, best.keras) and plots.

        With `resume`, continue from `run_dir/checkpoint.npz`: metrics.jsonl is rewritten
        from the checkpoint (dropping any row of a round that did not checkpoint).
    """
    cfg = cfg.replace(out_dir=str(Path(run_dir).resolve()))  # clients keep state under it
    if cfg.strategy.strategy in ("fedbn", "fedrep", "apfl"):  # `flwr run` has no preflight
        ds = dataset_for(cfg)
        model = build_model(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
        check_personal_model(cfg.strategy.strategy, model, display(cfg.train.model))
    if cfg.continual.scenario != "none" and cfg.continual.cl_method in SERVER_METHODS:
        ds = dataset_for(cfg)
        model = build_model(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
        check_continual_model(cfg.continual.cl_method, model, display(cfg.train.model))
    recorder = RunRecorder(run_dir)
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(run_dir)
        recorder.rewrite_metrics(checkpoint.rows)
    else:
        recorder.write_config(cfg)
    ds = dataset_for(cfg)
    if not guarded(cfg) or cfg.privacy.operator_diagnostics:  # per-client label counts
        plot_partition(partition_histograms(cfg), ds.class_names, run_dir / "partition.png")
    evaluator = BestKeeper(CentralEvaluator(cfg), run_dir)  # best.keras at the end
    task_eval = TaskEvaluator(cfg) if cfg.continual.scenario != "none" else None
    board = TensorBoardWriter(run_dir / "tensorboard")

    def record(row: dict[str, Any], histograms: dict[str, np.ndarray]) -> None:
        recorder.append_metrics(row)
        evaluator.on_row(row)
        board.write_round(row, {f"updates/{k}": v for k, v in histograms.items()})
        if on_round is not None:
            on_round(row)

    try:
        result = run_rounds(
            grid,
            cfg,
            evaluator,
            num_slots,
            on_round=record,
            run_dir=run_dir,
            resume=checkpoint,
            task_eval=task_eval,
        )
    finally:
        board.close()
    summary = summarise(result.rows, result.wall_seconds, cfg)
    summary.update(personal_summary(result.rows, cfg, result.weights))
    if task_eval is not None:
        summary.update(scenario=cfg.continual.scenario, cl_method=cfg.continual.cl_method)
        summary.update(task_eval.summary(result.rows))
        summary.update(cost_summary(result.rows, run_dir))
    write_exports(cfg, run_dir, result.weights, evaluator)  # before summary: "finished"
    recorder.write_summary(summary)
    plot_accuracy(
        result.rows,
        run_dir / "accuracy.png",
        display(cfg.strategy.strategy),
        virtual=has_clock(cfg),
    )
    if task_eval is not None:
        title = f"{cfg.continual.scenario}, {cfg.continual.cl_method}"
        ends = [e for e in summary["task_end_rounds"] if e is not None]  # where tasks ended
        plot_task_accuracy(result.rows, ends, run_dir / "task_accuracy.png", title)
        plot_accuracy_matrix(summary["accuracy_matrix"], run_dir / "accuracy_matrix.png", title)
    return summary


def has_clock(cfg: ExperimentConfig) -> bool:
    """Whether the run's virtual time says more than its rounds: an asynchronous strategy
    (a row is a server step), heterogeneous devices (a profile other than uniform,
    or slow clients), or tasks on the clock. Then
    accuracy.png plots against virtual hours; otherwise against rounds, as before."""
    return (
        is_async(cfg.strategy.strategy)
        or cfg.devices.device_profile != "uniform"
        or cfg.devices.slow_fraction > 0
        or cfg.continual.task_seconds > 0
    )


def build_server_app(
    cfg: ExperimentConfig | None = None,
    run_dir: Path | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    results: dict | None = None,
    num_slots: int | None = None,
    resume: bool = False,
) -> ServerApp:
    """A ServerApp bound to a config (CLI) or reading `context.run_config` (`flwr run`)."""
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        c = cfg or ExperimentConfig.from_flat(dict(context.run_config))
        out, again = run_dir, resume
        if out is None and c.deploy.deploy_resume:  # `perennial deploy run --resume`
            out, again = Path(c.runtime.out_dir), True
            print(f"perennial: resuming {out}", flush=True)
        if out is None:
            base = c.runtime.out_dir or f"runs/flwr-{time.strftime('%Y%m%d-%H%M%S')}"
            out = prepare_run_dir(base)
            print(f"perennial: writing results to {out}", flush=True)
        want = c.federation.clients_per_round
        slots = num_slots or min(want, _wait_for_nodes(grid, want))
        summary = run_experiment(grid, c, out, max(1, slots), on_round, resume=again)
        if results is not None:
            results.update(summary)

    return server_app


def _wait_for_nodes(grid: Grid, minimum: int, settle: float = 5.0, timeout: float = 60.0) -> int:
    """Connected nodes once `minimum` are, or once the count has not changed for
    `settle` seconds (Flower's local simulation defaults to 2 SuperNodes)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        n = len(list(grid.get_node_ids()))
        now = time.monotonic()
        if n != last:
            last, since = n, now
        if n >= minimum or (n > 0 and now - since >= settle) or now > deadline:
            return n
        time.sleep(0.5)


app = build_server_app()
