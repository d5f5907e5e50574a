"""`perennial bench GRID.toml`: every cell of a grid, resumable, one comparison table.

A grid file has three parts:

```toml
[base]                      # experiment keys shared by every cell
rounds = 20
[axes]                      # keys to cross; each a list of values
partition = ["iid", "dirichlet"]
seed = [0, 1]
[[variant]]                 # the rows being compared (strategies with their params)
name = "fedprox-0.1"        # optional label (default: the strategy name)
strategy = "fedprox"
proximal-mu = 0.1
[bench]
target-accuracy = 0.8       # for "rounds to reach target"
```

Plug-ins by import path may stand wherever a name does, and `[base.plugin]`,
`[variant.plugin]` or a `"plugin.<name>"` axis set their settings; a cell or variant
named by a plug-in takes its attribute's name ("pkg.mod:MeanPlus" -> "MeanPlus").
Each cell runs in `OUT/cells/<label>/` and counts as finished once its `summary.json`
exists, so a killed bench started again runs only the unfinished cells (a partial
cell directory is cleared first); a finished cell whose config.toml no longer matches the
grid is refused (bench_cells.py). Results are aggregated over `seed` (mean +- std).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig, canonical_key, read_toml, table_values
from learning.errors import ConfigError
from learning.plugin_objects import is_pickled, object_name
from learning.plugins import FORMS, is_keras_file, is_plugin
from server.run_dir import read_metrics
from simulations.bench_tables import CONTINUAL_COST_KEYS, CONTINUAL_KEYS, PERSONAL_KEYS


@dataclass(frozen=True)
class Cell:
    variant: str
    axes: tuple[tuple[str, Any], ...]  # non-seed axis values, in grid order
    seed: int | None
    values: dict[str, Any]  # full flat config of the cell

    @property
    def label(self) -> str:
        """The cell's directory name: no path separators, spaces or ':' (a plug-in's
        import path), which other tools read as a separator (TensorBoard's logdir_spec)."""
        parts = [self.variant] + [f"{k}-{v}" for k, v in self.axes]
        parts = [p.replace("#", "").replace("=", "") for p in parts]
        if self.seed is not None:
            parts.append(f"seed-{self.seed}")
        return "__".join(
            str(p).replace("/", "_").replace("\\", "_").replace(":", "_").replace(" ", "")
            for p in parts
        )

    @property
    def group(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.axes) or "all"


@dataclass(frozen=True)
class Grid:
    cells: list[Cell]
    target_accuracy: float
    plot_against: str = "round"  # accuracy.png's x axis: "round" or "virtual-time" (hours)
    baseline: str | None = None  # a variant the others are compared with, seed by seed


def load_grid(path: str | Path | dict[str, Any]) -> Grid:
    """Parse and validate a grid file (or its tables as a dict, from the Python API);
    every cell's config is checked before any runs."""
    p = "the grid dict" if isinstance(path, dict) else Path(path)
    data = path if isinstance(path, dict) else read_toml(p, "grid file")
    unknown = set(data) - {"base", "axes", "variant", "bench"}
    if unknown:
        raise ConfigError(
            f"grid file {str(p)!r}: unknown section {sorted(unknown)[0]!r}; "
            "expected [base], [axes], [[variant]], [bench]"
        )
    for name in ("base", "axes", "bench"):
        if not isinstance(data.get(name, {}), dict):
            raise ConfigError(f"grid file {str(p)!r}: [{name}] must be a table of keys")
    variant_list = data.get("variant", [])
    if not isinstance(variant_list, list) or not all(isinstance(v, dict) for v in variant_list):
        raise ConfigError(f"grid file {str(p)!r}: [[variant]] must be a list of tables")
    base = _keys(data.get("base", {}))
    axes = {canonical_key(k): v for k, v in data.get("axes", {}).items()}
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid axis {key!r} must be a non-empty list, got {values!r}")
    variants = data.get("variant") or [{}]
    bench = data.get("bench", {})
    target = bench.get("target-accuracy", 0.8)
    if not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise ConfigError(f"[bench] target-accuracy must be in (0, 1], got {target!r}")
    against = bench.get("plot-against", "round")
    if against not in ("round", "virtual-time"):
        raise ConfigError(
            f'[bench] plot-against must be "round" or "virtual-time", got {against!r}'
        )
    baseline = bench.get("baseline")
    seeds = axes.get("seed")
    other = [(k, v) for k, v in axes.items() if k != "seed"]
    cells: list[Cell] = []
    names: set[str] = set()
    for variant in variants:
        params = _keys({k: v for k, v in variant.items() if k != "name"})
        strategy = params.get("strategy") or base.get("strategy", "fedavg")
        name = str(variant.get("name") or short_name("strategy", strategy))
        if name in names:
            raise ConfigError(f"grid variant name {name!r} appears twice; give each a name")
        names.add(name)
        for combo in itertools.product(*[vals for _, vals in other]) if other else [()]:
            chosen = [_axis_value(k, v) for (k, _), v in zip(other, combo, strict=True)]
            fixed = tuple((k, label) for (k, _), (label, _) in zip(other, chosen, strict=True))
            overrides = _keys({key: val for _, keys in chosen for key, val in keys.items()})
            for seed in seeds or [None]:
                values = {**base, **overrides, **params}
                if seed is not None:
                    values["seed"] = seed
                ExperimentConfig.from_flat(values)  # fail before anything runs
                cells.append(Cell(name, fixed, seed, values))
    _check_labels(cells)
    if baseline is not None and baseline not in names:
        raise ConfigError(
            f"[bench] baseline {baseline!r} is not a variant; expected one of {sorted(names)}"
        )
    return Grid(cells, float(target), against, baseline)


def short_name(key: str, value: Any) -> str:
    """`key`'s value as a cell or variant is named by it: a plug-in by its attribute
    ("my_pkg.strategies:MeanPlus" -> "MeanPlus"), a .keras model by its file's stem."""
    text = str(value)
    if key not in FORMS or not isinstance(value, str) or not is_plugin(text):
        return text
    if is_pickled(text):  # an object from the Python API: its own name
        return object_name(text)
    return Path(text).stem if is_keras_file(text) else text.rpartition(":")[2]


def _check_labels(cells: list[Cell]) -> None:
    """Two cells may not share a directory (short plug-in names can meet)."""
    seen: dict[str, Cell] = {}
    for cell in cells:
        if not cell.label.strip(".") or cell.label.startswith("."):
            raise ConfigError(
                f"grid cell directory {cell.label!r} would be hidden or name a parent; "
                'give the variant a name that does not start with "." (name = "...")'
            )
        if cell.label in seen:
            raise ConfigError(
                f"two grid cells would share the directory {cell.label!r}; give the "
                'variants or axis values distinct names (name = "...")'
            )
        seen[cell.label] = cell


def _keys(table: dict[str, Any]) -> dict[str, Any]:
    """A grid table's keys in canonical flat form: flat, `section.key`, or section
    sub-tables (`[base.train] lr = 0.1`, `[base.plugin] width = 64`) all name the same
    key."""
    return table_values(table, "grid table")


def _axis_value(key: str, value: Any) -> tuple[str, dict[str, Any]]:
    """An axis value is a plain value of `key`, or a table of keys with an optional name.

    `partition = ["iid", {name = "#C=2", partition = "classes", classes-per-client = 2}]`
    """
    if isinstance(value, dict):
        keys = {k: v for k, v in value.items() if k != "name"}
        label = "-".join(short_name(canonical_key(k), v) for k, v in keys.items())
        return str(value.get("name") or label), keys
    return short_name(key, value), {key: value}


def is_finished(cell_dir: Path) -> bool:
    return (cell_dir / "summary.json").is_file()


def run_grid(grid: Grid, out: Path, ray_address: str | None = None, quiet: bool = False) -> None:
    """Run every unfinished cell in order; finished ones are skipped."""
    from simulations.bench_cells import check_finished_cell
    from simulations.progress import RoundProgress
    from simulations.runtime import simulate

    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out / "bench.lock", "w")  # noqa: SIM115  (held for the whole bench)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConfigError(
            f"bench directory {str(out)!r} is in use by another perennial bench; "
            "wait for it or choose another --out"
        ) from None
    todo = []
    for c in grid.cells:
        if is_finished(cells_dir / c.label):
            check_finished_cell(cells_dir / c.label, c.values, c.label)
        else:
            todo.append(c)
    done = len(grid.cells) - len(todo)
    if done and not quiet:
        print(f"bench: {done} of {len(grid.cells)} cells already finished; skipping them")
    for i, cell in enumerate(todo, start=1):
        cell_dir = cells_dir / cell.label
        if cell_dir.exists():
            shutil.rmtree(cell_dir)  # a cell interrupted mid-run starts over
        cell_dir.mkdir(parents=True)
        cfg = ExperimentConfig.from_flat(cell.values)
        if not quiet:
            print(f"bench: cell {done + i}/{len(grid.cells)} {cell.label}", flush=True)
        with RoundProgress(cfg.federation.rounds, quiet=True) as progress:
            simulate(cfg, cell_dir, on_round=progress, ray_address=ray_address)


def _rounds_to(rows: list[dict[str, Any]], target: float) -> int | None:
    for r in rows:
        if r.get("accuracy") is not None and r["accuracy"] >= target:
            return int(r["round"])
    return None


def _hours_to(rows: list[dict[str, Any]], target: float) -> float | None:
    """Virtual hours (the clock's `virtual_seconds`) until the first row at `target`."""
    for r in rows:
        if r.get("accuracy") is not None and r["accuracy"] >= target:
            v = r.get("virtual_seconds")
            return None if v is None else float(v) / 3600.0
    return None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise_grid(grid: Grid, out: Path) -> list[dict[str, Any]]:
    """One row per (variant, non-seed axes): means and stds over seeds."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in grid.cells:
        groups.setdefault((cell.variant, cell.group), []).append(cell)
    table = []
    for (variant, group), cells in groups.items():
        finals, bests, reach, sent, recv, wall, eps, pld = [], [], [], [], [], [], [], []
        hours: list[float] = []
        total: list[float] = []
        keys = (*CONTINUAL_KEYS, *CONTINUAL_COST_KEYS, *PERSONAL_KEYS)
        cl: dict[str, list[float]] = {k: [] for k in keys}
        seeds_done = 0
        for cell in cells:
            cell_dir = out / "cells" / cell.label
            if not is_finished(cell_dir):
                continue
            seeds_done += 1
            summary = json.loads((cell_dir / "summary.json").read_text())
            rows = read_metrics(cell_dir)
            finals.append(summary["final_accuracy"])
            bests.append(summary["best_accuracy"])
            r = _rounds_to(rows, grid.target_accuracy)
            if r is not None:
                reach.append(r)
            h = _hours_to(rows, grid.target_accuracy)
            if h is not None:
                hours.append(h)
            if any("bytes_sent" in x for x in rows):  # withheld under central DP
                sent.append(sum(x.get("bytes_sent", 0) for x in rows) / 1e6)
                recv.append(sum(x.get("bytes_received", 0) for x in rows) / 1e6)
            wall.append(summary["wall_seconds"])
            if rows and rows[-1].get("virtual_seconds") is not None:
                total.append(float(rows[-1]["virtual_seconds"]) / 3600.0)
            if summary.get("dp") == "central":  # no epsilon recorded = no noise = infinite
                e, e_pld = summary.get("epsilon"), summary.get("epsilon_pld")
                eps.append(math.inf if e is None else float(e))
                pld.append(math.inf if e_pld is None else float(e_pld))
            for key in cl:
                if summary.get(key) is not None:
                    cl[key].append(summary[key])
        fm, fs = _mean_std(finals)
        bm, bs = _mean_std(bests)
        table.append(
            {
                "variant": variant,
                "group": group,
                "seeds": seeds_done,
                "final_mean": fm,
                "final_std": fs,
                "best_mean": bm,
                "best_std": bs,
                "rounds_to_target": statistics.fmean(reach) if reach else None,
                "reached": f"{len(reach)}/{seeds_done}",
                # virtual hours to the target (seeds that reached it), the clock's view
                "virtual_hours_to_target": statistics.fmean(hours) if hours else None,
                "virtual_hours_total": statistics.fmean(total) if total else None,
                "mb_sent": statistics.fmean(sent) if sent else None,
                "mb_received": statistics.fmean(recv) if recv else None,
                "wall_seconds": statistics.fmean(wall) if wall else None,
                "epsilon": statistics.fmean(eps) if eps else None,
                "epsilon_pld": statistics.fmean(pld) if pld else None,
            }
        )
        for key, values in cl.items():  # continual: accuracy-matrix metrics; local-eval
            if values:
                mean = key if key in PERSONAL_KEYS else f"{key}_mean"
                table[-1][mean], table[-1][f"{key}_std"] = _mean_std(values)
    table.sort(key=lambda r: (r["group"], -(r["final_mean"] or -1)))
    return table
