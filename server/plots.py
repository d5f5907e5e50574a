"""PNG plots of one run: accuracy/loss per round and the label split across clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(rows: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Test accuracy and loss of the global model per round."""
    plt = _pyplot()
    rows = [r for r in rows if r.get("accuracy") is not None]
    rounds = [r["round"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(rounds, [r["accuracy"] for r in rows], marker=".", color="tab:blue")
    ax1.set_xlabel("round")
    ax1.set_ylabel("test accuracy")
    ax1.grid(alpha=0.3)
    ax2.plot(rounds, [r["loss"] for r in rows], marker=".", color="tab:red")
    ax2.set_xlabel("round")
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
    plt = _pyplot()
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
