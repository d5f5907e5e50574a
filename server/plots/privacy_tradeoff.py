"""Accuracy against epsilon for a privacy grid: the privacy-utility trade-off."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_privacy(table: list[dict[str, Any]], path: Path) -> None:
    """One point per variant; runs without noise (infinite epsilon) as a dashed line."""
    from server.plots.run import pyplot

    plt = pyplot()

    rows = [r for r in table if r.get("epsilon") is not None and r["final_mean"] is not None]
    finite = sorted((r for r in rows if math.isfinite(r["epsilon"])), key=lambda r: r["epsilon"])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    if finite:
        xs = [r["epsilon"] for r in finite]
        ys = [100 * r["final_mean"] for r in finite]
        ax.plot(xs, ys, "o-", color="tab:blue", label="DP-FedAvg (final accuracy)")
        for r, x, y in zip(finite, xs, ys, strict=True):
            ax.annotate(
                r["variant"], (x, y), textcoords="offset points", xytext=(4, -12), fontsize=7
            )
    for r in rows:
        if math.isinf(r["epsilon"]):
            ax.axhline(
                100 * r["final_mean"],
                color="grey",
                linestyle="--",
                linewidth=1,
                label=f"{r['variant']} (epsilon = inf)",
            )
    ax.set_xlabel("epsilon (delta fixed; lower = more private)")
    ax.set_ylabel("test accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
