"""A bench grid's accuracy curves: one panel per group, one line per variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.plots.run import pyplot


def plot_grid_curves(
    panels: dict[str, dict[str, list[list[float]]]],
    path: Path,
    xs: dict[str, dict[str, list[list[float]]]],
    xlabel: str = "round",
    ylabel: str = "test accuracy",
) -> None:
    """`panels[group][variant]` holds one accuracy curve per seed: the mean is drawn, the
    seeds' min-max band shaded; a variant keeps its colour across panels. `xs` (same
    shape) holds each point's x: the round it was evaluated at (evaluations need not be
    every round), or its virtual hours; the seeds' mean x is drawn. `ylabel`: what the
    curves are (personalised.png)."""
    plt = pyplot()
    groups = list(panels)
    variants = list(dict.fromkeys(v for g in panels.values() for v in g))
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, group in zip(axes[0], groups, strict=True):
        for i, variant in enumerate(variants):
            curves = panels[group].get(variant, [])
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.array([c[:n] for c in curves])
            x = np.array([h[:n] for h in xs[group][variant]]).mean(axis=0)
            colour = cmap(i % 20)
            ax.plot(x, arr.mean(axis=0), label=variant, color=colour, linewidth=1.4)
            if len(curves) > 1:
                ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), color=colour, alpha=0.15)
        ax.set_title(group)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
