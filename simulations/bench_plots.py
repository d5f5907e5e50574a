"""A bench's curves: accuracy.png (central accuracy per evaluated round, or per virtual
hour) and, for local-eval grids, personalised.png, from the cells' metrics rows."""

from __future__ import annotations

from pathlib import Path

from server.run_dir import read_metrics
from simulations.bench import Grid

Curves = dict[str, dict[str, list[list[float]]]]  # group -> variant -> one list per seed


def _add(table: Curves, group: str, variant: str, values: list[float]) -> None:
    table.setdefault(group, {}).setdefault(variant, []).append(values)


def plot_grid(grid: Grid, out: Path) -> None:
    """Accuracy per round, one line per variant, one panel per group, seed band shaded."""
    from server.plots.bench import plot_grid_curves

    timed = grid.plot_against == "virtual-time"
    panels: Curves = {}
    xs: Curves = {}
    personal: Curves = {}  # local-eval grids
    personal_xs: Curves = {}
    for cell in grid.cells:
        rows = read_metrics(out / "cells" / cell.label)
        g, v = cell.group, cell.variant
        panels.setdefault(g, {}).setdefault(v, [])  # a variant keeps its colour, curve or not
        evaluated = [r for r in rows if r.get("accuracy") is not None]
        if evaluated:
            _add(panels, g, v, [r["accuracy"] for r in evaluated])
            hours = [float(r.get("virtual_seconds") or 0.0) / 3600.0 for r in evaluated]
            _add(xs, g, v, hours if timed else [float(r["round"]) for r in evaluated])
        mine = [r for r in rows if r.get("personalised_accuracy") is not None]
        if mine:  # every local-eval-every rounds
            _add(personal, g, v, [r["personalised_accuracy"] for r in mine])
            _add(personal_xs, g, v, [float(r["round"]) for r in mine])
    plot_grid_curves(panels, out / "accuracy.png", xs, "virtual hours" if timed else "round")
    if personal:
        plot_grid_curves(
            personal, out / "personalised.png", personal_xs, ylabel="personalised accuracy"
        )
