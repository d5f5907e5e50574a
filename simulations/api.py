"""The Python API: what `perennial run` and `perennial bench` do, for notebooks and scripts.

```python
from simulations import api

result = api.run({"federation": {"rounds": 5}, "train": {"lr": 0.05}})
result.summary["final_accuracy"], result.rows[-1], result.run_dir

result = api.run("my-experiment.toml", {"rounds": 10}, model=build)  # build: a function
table = api.bench("simulations/experiments/time.toml", out="bench-out/time").table
```

A config is a dict (flat keys, `section.key`, or section tables as in a TOML file) or a
TOML path, with overrides on top. Wherever a plug-in is accepted (model, dataset,
partition, strategy) a Python object (a function or class, also one defined in a
notebook) may stand in for the import path: it travels to the Ray workers by value
(learning/plugin_objects.py). The CLI is a thin layer over these functions; every user
mistake raises `learning.errors.ConfigError` (one line), as the CLI prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import learning  # noqa: F401  (privacy defaults: telemetry off)
import strategies  # noqa: F401  (registers the strategy names the config checks)
from learning.config import (
    ExperimentConfig,
    build_config,
    canonical_key,
    load_toml,
    table_values,
)
from learning.errors import ConfigError
from learning.federated_data import clear_caches
from learning.plugin_objects import is_pickled, object_name, pack, trust_payloads
from learning.plugins import FORMS
from simulations.run_output import preflight, write_run_report

Config = Mapping[str, Any] | str | Path | None


@dataclass(frozen=True)
class RunResult:
    """A finished run: its directory, `summary.json`, the `metrics.jsonl` rows and config."""

    run_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    config: ExperimentConfig

    @property
    def accuracies(self) -> list[float | None]:
        """Central test accuracy per round (None where the round was not evaluated)."""
        return [r.get("accuracy") for r in self.rows]


@dataclass(frozen=True)
class BenchResult:
    """A finished grid: its directory, the comparison table rows and `results.md`."""

    out: Path
    table: list[dict[str, Any]]
    results_md: str


def experiment_values(config: Config = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """The user's keys, canonical and flat: a dict or TOML path, then `overrides`; Python
    objects in plug-in keys become by-value config strings."""
    if config is None:
        values: dict[str, Any] = {}
    elif isinstance(config, (str, Path)):
        values = load_toml(config)
    elif isinstance(config, Mapping):
        values = table_values(config, "config")
    else:
        raise ConfigError(
            f"config must be a dict or a TOML path, got {type(config).__name__}; "
            'e.g. run({"rounds": 5}) or run("experiment.toml")'
        )
    values.update(table_values(overrides or {}, "overrides"))
    return {k: _by_value(k, v) for k, v in values.items()}


def _by_value(key: str, value: Any) -> Any:
    import numpy as np

    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic) and isinstance(value.item(), (int, float, bool)):
        return value.item()  # a NumPy number from a notebook's own arithmetic
    if key in FORMS and hasattr(value, "layers") and hasattr(value, "predict"):
        raise ConfigError(
            f"{key} got a built keras.Model; pass the function that builds it "
            '(input_shape, num_classes) -> keras.Model, or save it and pass "model.keras"'
        )
    if key in FORMS and callable(value):
        return pack(key, value)
    raise ConfigError(
        f"config key {key!r} got a {type(value).__name__}; only {sorted(FORMS)} take Python "
        "objects (a function or class), every other key a string, number or boolean"
    )


def default_out(cfg: ExperimentConfig) -> Path:
    """runs/<time>-<strategy>, numbered if that exists."""
    value = cfg.strategy.strategy
    name = object_name(value) if is_pickled(value) else value
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{stamp}-{name.replace('/', '_')}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = Path(f"{base}-{n}")
    return out


def run(
    config: Config = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    announce: Callable[[str], None] | None = print,
    trust_pickled: bool = False,
    **plugins: Any,
) -> RunResult:
    """Run one experiment (or `resume` an interrupted run directory) on Flower's
    simulation runtime; returns the summary, the metrics rows and the run directory.

    `plugins` are model=, dataset=, partition=, strategy= given as objects or import
    paths (the same as putting them in `overrides`). `trust_pickled`: a resumed run's
    config may hold objects passed by value; loading them runs their code, so say so."""
    from server.run_dir import RunRecorder, prepare_run_dir, read_metrics
    from simulations.memory import PeakMemory
    from simulations.progress import RoundProgress
    from simulations.runtime import simulate

    say = announce or (lambda _text: None)
    clear_caches()  # a notebook may have changed the data on disk since the last run
    if resume is not None:
        run_dir = Path(resume)
        if config is not None or overrides or out is not None or plugins:
            raise ConfigError("--resume takes the run's own config; drop CONFIG/--set/--out")
        if not (run_dir / "config.toml").is_file():
            raise ConfigError(f"{str(run_dir)!r} is not a run directory (no config.toml)")
        if trust_pickled:
            trust_payloads(load_toml(run_dir / "config.toml").values())
        cfg = build_config(run_dir / "config.toml")
        if (run_dir / "summary.json").is_file():
            say(f"perennial: {run_dir} already finished; nothing to resume")
            return _result(run_dir, cfg)
        from server.checkpoint import load_checkpoint

        done = load_checkpoint(run_dir).round
        preflight(cfg)
        say(f"perennial: resuming {run_dir} after round {done}")
    else:
        unknown = set(plugins) - set(FORMS)
        if unknown:
            raise ConfigError(
                f"run() got unknown keyword {sorted(unknown)[0]!r}; plug-ins are "
                f"{sorted(FORMS)}, other keys go in config or overrides"
            )
        cfg = ExperimentConfig.from_flat(
            experiment_values(config, {**(overrides or {}), **plugins})
        )
        preflight(cfg)
        run_dir = prepare_run_dir(out or default_out(cfg))
        say(f"perennial: run directory {run_dir}")
    progress = RoundProgress(cfg.federation.rounds, quiet=quiet)
    with progress, PeakMemory() as mem:
        summary = simulate(
            cfg,
            run_dir,
            on_round=progress,
            ray_address=ray_address,
            verbose=verbose,
            resume=resume is not None,
        )
    summary["peak_rss_mb"] = round(mem.peak_mb, 1)  # this process and its children (Ray)
    RunRecorder(run_dir).write_summary(summary)
    write_run_report([run_dir], run_dir / "report.html")
    return RunResult(run_dir, summary, read_metrics(run_dir), cfg)


def _result(run_dir: Path, cfg: ExperimentConfig) -> RunResult:
    import json

    from server.run_dir import read_metrics

    summary = json.loads((run_dir / "summary.json").read_text())
    return RunResult(run_dir, summary, read_metrics(run_dir), cfg)


def bench(
    grid: Mapping[str, Any] | str | Path,
    *,
    out: str | Path | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
    announce: Callable[[str], None] | None = print,
) -> BenchResult:
    """Run every unfinished cell of a grid (a TOML path or the same tables as a dict:
    base, axes, variant, bench) and write the comparison tables and plots."""
    from simulations.bench import load_grid, run_grid, summarise_grid
    from simulations.bench_plots import plot_grid
    from simulations.bench_tables import write_tables

    say = announce or (lambda _text: None)
    clear_caches()
    if isinstance(grid, Mapping):
        if out is None:  # finished cells are found by label: another grid's would count
            raise ConfigError("a grid given as a dict needs out=, the bench directory")
        parsed = load_grid(_grid_by_value(grid))
        where = Path(out)
    elif isinstance(grid, (str, Path)):
        parsed = load_grid(grid)
        where = Path(out or Path("bench-out") / Path(grid).stem)
    else:
        raise ConfigError(
            f"grid must be a dict of tables or a TOML path, got {type(grid).__name__}"
        )
    seen: set[tuple] = set()  # each distinct data set-up and plug-in is checked once
    for cell in parsed.cells:
        preflight(ExperimentConfig.from_flat(cell.values), seen)
    where.mkdir(parents=True, exist_ok=True)
    say(f"perennial: bench directory {where} ({len(parsed.cells)} cells)")
    run_grid(parsed, where, ray_address=ray_address, quiet=quiet)
    table = summarise_grid(parsed, where)
    write_tables(table, where, parsed.target_accuracy)
    if parsed.baseline is not None:  # paired differences per seed (simulations/paired.py)
        from simulations.paired import paired_table, write_paired

        section = write_paired(paired_table(parsed.cells, where, parsed.baseline), where)
        results = where / "results.md"
        results.write_text(results.read_text() + "\n" + section)
    plot_grid(parsed, where)
    if any(r.get("epsilon") is not None for r in table):
        from server.plots.privacy_tradeoff import plot_privacy

        plot_privacy(table, where / "privacy.png")
    write_run_report(sorted((where / "cells").iterdir()), where / "report.html")
    return BenchResult(where, table, (where / "results.md").read_text())


def _grid_by_value(grid: Mapping[str, Any]) -> dict[str, Any]:
    """A grid dict with Python objects packed (bench names a variant or axis value that
    is an object after the object)."""

    def packed(table: object, where: str) -> dict[str, Any]:
        if not isinstance(table, Mapping):
            raise ConfigError(f"grid {where} must be a table (dict), got {type(table).__name__}")
        keys = table_values({k: v for k, v in table.items() if k != "name"}, f"grid {where}")
        out = {k: _by_value(k, v) for k, v in keys.items()}
        return {**out, "name": table["name"]} if "name" in table else out

    def axis(key: str, values: object) -> object:  # an axis is a list of values
        if not isinstance(values, list):
            return values  # load_grid says what an axis must be
        return [v if isinstance(v, Mapping) else _by_value(key, v) for v in values]

    data: dict[str, Any] = dict(grid)
    data["base"] = packed(grid.get("base", {}), "base")
    if "variant" in grid:
        variants = grid["variant"]
        if not isinstance(variants, list):
            raise ConfigError("grid variant must be a list of tables (dicts)")
        data["variant"] = [packed(v, "variant") for v in variants]
    if "axes" in grid:
        axes = grid["axes"]
        if not isinstance(axes, Mapping):
            raise ConfigError(f"grid axes must be a table (dict), got {type(axes).__name__}")
        data["axes"] = {canonical_key(k): axis(canonical_key(k), v) for k, v in axes.items()}
    return data
