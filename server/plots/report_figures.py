"""The report's figures, drawn on pyplot-free Agg figures and embedded as PNG data URIs.

They take plain data (names, series, matrices), not run objects, so they live with the
other plots in this layer while simulations/report/ decides what to show.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np


def figure(width: float, height: float):
    """A pyplot-free Agg figure: no global backend switch, nothing left open."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def png_img(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return img_tag(buf.getvalue(), alt)


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def colour(i: int) -> str:
    return f"C{i % 10}"


Series = tuple[list[int], list[float]]


def curves(
    lines: list[tuple[str, dict[str, Series]]], metrics: list[tuple[str, str]], title: str
) -> str:
    """One subplot per metric, one line per run (same colour for a run everywhere).

    `lines` holds, per run, its name and its (rounds, values) series by metric key."""
    present = [(k, label) for k, label in metrics if any(s[k][0] for _, s in lines)]
    if not present:
        return ""
    from matplotlib.ticker import MaxNLocator

    fig = figure(5.4 * len(present), 3.8)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, (key, label) in zip(axes, present, strict=True):
        for i, (name, by_key) in enumerate(lines):
            xs, ys = by_key[key]
            if xs:
                marker = "." if len(xs) <= 50 else None
                ax.plot(xs, ys, marker=marker, color=colour(i), label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return png_img(fig, title)


def task_curves(name: str, by_task: dict[str, Series]) -> str:
    """Per-task test accuracy of one run over rounds (`by_task`: acc_task_<j> -> series)."""
    if not by_task:
        return ""
    from matplotlib.ticker import MaxNLocator

    fig = figure(7.5, 3.6)
    ax = fig.subplots()
    for i, (key, (xs, ys)) in enumerate(by_task.items()):
        ax.plot(
            xs,
            ys,
            marker="." if len(xs) <= 50 else None,
            color=colour(i),
            label=key.removeprefix("acc_"),
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy per task")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(name)
    fig.tight_layout()
    return png_img(fig, f"per-task accuracy of {name}")


def heatmap(name: str, m: np.ndarray) -> str:
    """The accuracy matrix R[i, j] as a labelled heat map."""
    rows, cols = m.shape
    side = min(12.0, max(3.5, 0.6 * max(rows, cols) + 2.0))
    fig = figure(side + 1.0, side)
    ax = fig.subplots()
    finite = m[np.isfinite(m)]
    unit = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    im = ax.imshow(m, cmap="viridis", vmin=0 if unit else None, vmax=1 if unit else None)
    if max(rows, cols) <= 20:
        size = 9 if max(rows, cols) <= 8 else 7
        mid = 0.5 if unit else (float(np.nanmean(m)) if finite.size else 0.0)
        for i in range(rows):
            for j in range(cols):
                if np.isfinite(m[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{m[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=size,
                        color="white" if m[i, j] < mid else "black",
                    )
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training on task")
    ax.set_title(f"accuracy matrix: {name}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return png_img(fig, f"accuracy matrix of {name}")
