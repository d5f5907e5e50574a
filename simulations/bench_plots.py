"""A bench's curves: accuracy.png (central accuracy per evaluated round, or per virtual
hour) and, for local-eval grids, personalised.png, from the cells' metrics rows."""

from __future__ import annotations

from pathlib import Path

from server.run_dir import read_metrics
from simulations.bench import Grid


def plot_grid(grid: Grid, out: Path) -> None:
    """Accuracy per round, one line per variant, one panel per group, seed band shaded."""
    from server.plots.bench import plot_grid_curves

    timed = grid.plot_against == "virtual-time"
    panels: dict[str, dict[str, list[list[float]]]] = {}
    personal: dict[str, dict[str, list[list[float]]]] = {}  # local-eval grids
    xs: dict[str, dict[str, list[list[float]]]] = {}
    personal_xs: dict[str, dict[str, list[list[float]]]] = {}
    for cell in grid.cells:
        rows = read_metrics(out / "cells" / cell.label)
        evaluated = [r for r in rows if r.get("accuracy") is not None]
        seeds = panels.setdefault(cell.group, {}).setdefault(cell.variant, [])
        if evaluated:
            seeds.append([r["accuracy"] for r in evaluated])
            at = [
                float(r.get("virtual_seconds") or 0.0) / 3600.0 if timed else float(r["round"])
                for r in evaluated
            ]
            xs.setdefault(cell.group, {}).setdefault(cell.variant, []).append(at)
        mine = [r for r in rows if r.get("personalised_accuracy") is not None]
        if mine:  # every local-eval-every rounds
            personal.setdefault(cell.group, {}).setdefault(cell.variant, []).append(
                [r["personalised_accuracy"] for r in mine]
            )
            rounds = [float(r["round"]) for r in mine]
            personal_xs.setdefault(cell.group, {}).setdefault(cell.variant, []).append(rounds)
    plot_grid_curves(panels, out / "accuracy.png", xs, "virtual hours" if timed else "round")
    if personal:
        plot_grid_curves(
            personal, out / "personalised.png", personal_xs, ylabel="personalised accuracy"
        )
