"""PNG plots of one run: accuracy/loss per round and the label split across clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_x(rows: list[dict[str, Any]], virtual: bool) -> tuple[list[float], str]:
    """The x values and label of `plot_accuracy`: virtual hours when `virtual` and every
    row carries `virtual_seconds`, else rounds."""
    if virtual and rows and all(r.get("virtual_seconds") is not None for r in rows):
        return [float(r["virtual_seconds"]) / 3600.0 for r in rows], "virtual hours"
    return [r["round"] for r in rows], "round"


def plot_accuracy(
    rows: list[dict[str, Any]], path: Path, title: str = "", virtual: bool = False
) -> None:
    """Test accuracy and loss of the global model per round, or against virtual hours
    (`virtual`: the run has a clock worth reading, see server/app.py)."""
    plt = pyplot()
    rows = [r for r in rows if r.get("accuracy") is not None]
    xs, label = accuracy_x(rows, virtual)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(xs, [r["accuracy"] for r in rows], marker=".", color="tab:blue")
    ax1.set_xlabel(label)
    ax1.set_ylabel("test accuracy")
    ax1.grid(alpha=0.3)
    ax2.plot(xs, [r["loss"] for r in rows], marker=".", color="tab:red")
    ax2.set_xlabel(label)
    ax2.set_ylabel("test loss")
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "global model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_partition(
    histograms: np.ndarray, class_names: tuple[str, ...], path: Path, max_clients: int = 100
) -> None:
    """Heatmap of examples per (client, label); large federations show the first clients."""
    plt = pyplot()
    shown = histograms[:max_clients]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    im = ax.imshow(shown.T, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(class_names)))
    ax.set_yticklabels(class_names, fontsize=7)
    ax.set_xlabel("client (partition id)")
    total = len(histograms)
    note = f" (first {len(shown)} of {total})" if total > len(shown) else ""
    ax.set_title(f"label distribution across clients{note}")
    fig.colorbar(im, ax=ax, label="examples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_task_accuracy(
    rows: list[dict[str, Any]], end_rounds: list[int], path: Path, title: str = ""
) -> None:
    """Test accuracy on each task per round, dashed lines at the task boundaries."""
    plt = pyplot()
    rows = [r for r in rows if r.get("task_accuracy")]
    tasks = sorted({int(j) for r in rows for j in r["task_accuracy"]})
    fig, ax = plt.subplots(figsize=(8, 4))
    cmap = plt.get_cmap("tab10")
    for j in tasks:
        pts = [
            (r["round"], r["task_accuracy"][str(j)]) for r in rows if str(j) in r["task_accuracy"]
        ]
        ax.plot(*zip(*pts, strict=True), marker=".", color=cmap(j % 10), label=f"task {j}")
    for end in end_rounds[:-1]:
        ax.axvline(end + 0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy on task")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title or "accuracy per task")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy_matrix(matrix: list[list[float | None]], path: Path, title: str = "") -> None:
    """Heatmap of a[i][j] (after task i, on task j); unseen cells left blank."""
    plt = pyplot()
    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 4.4))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                colour = "black" if m[i, j] > 0.6 else "white"
                ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", color=colour)
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_title(title or "accuracy matrix (%)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
