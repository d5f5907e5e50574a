"""One self-contained HTML page comparing run directories.

The page must open anywhere (mailed, attached to an issue, viewed offline), so
plots are embedded as base64 PNGs, the CSS is inline and nothing is fetched.
Every string read from a run directory is HTML-escaped, and a missing or partial
file drops its section rather than the whole report: a crashed run is exactly
the one someone wants to look at.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import statistics
import time
import tomllib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learning.errors import ConfigError
from server.run_dir import write_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEMORY_KEYS = ("peak_rss_mb", "server_rss_mb", "workers_rss_mb")
MISSING = object()

CSS = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 24px;
       color: #222; max-width: 1150px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.absent { color: #999; }
.note { color: #666; font-size: 12px; }
img { max-width: 100%; height: auto; }
figure { margin: 8px 0 16px 0; } figcaption { font-size: 12px; color: #555; }
details summary { cursor: pointer; }
"""


@dataclass
class Run:
    """What could be read from one run directory; `notes` say what could not."""

    path: Path
    name: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    config: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


def write_report(run_dirs: list[Path], out_path: Path) -> Path:
    """Write the comparison page for `run_dirs` to `out_path` and return `out_path`."""
    if not run_dirs:
        raise ConfigError(
            "no run directories given; pass one or more folders printed by perennial run"
        )
    runs = [load_run(Path(p)) for p in run_dirs]
    _name_runs(runs)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, render(runs))
    out_path.chmod(0o644)  # mkstemp makes it owner-only; a report is meant to be shared
    return out_path


def load_run(path: Path) -> Run:
    """Read one run directory; only a missing metrics.jsonl is an error."""
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise ConfigError(
            f"{str(path)!r} is not a run directory (no metrics.jsonl); "
            "pass the folder printed by perennial run"
        )
    notes: list[str] = []
    rows, bad = _read_jsonl(metrics)
    if bad:
        notes.append(f"{bad} unreadable line(s) in metrics.jsonl skipped")
    summary: dict[str, Any] = {}
    try:
        loaded = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            summary = loaded
        else:
            notes.append("summary.json is not an object")
    except FileNotFoundError:
        notes.append("no summary.json (run unfinished?)")
    except (OSError, ValueError):
        notes.append("summary.json unreadable")
    config: dict[str, Any] | None = None
    try:
        config = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        notes.append("no config.toml")
    except (OSError, ValueError):
        notes.append("config.toml unreadable")
    return Run(path, path.resolve().name or str(path), rows, summary, config, notes)


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1  # e.g. the last line of a run killed mid-write
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def _name_runs(runs: list[Run]) -> None:
    """Directory names, made unique (parent/name, then #i) so legends stay unambiguous."""
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.path.resolve().parent.name}/{r.name}"
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} #{seen[r.name]}"


# --- values -------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A finite-or-not real number, or None for gaps, bools and text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _series(run: Run, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(run.rows):
        y = _num(row.get(key))
        if y is None or math.isnan(y):
            continue
        x = _num(row.get("round"))
        xs.append(int(x) if x is not None else i + 1)
        ys.append(y)
    return xs, ys


def _values(run: Run, key: str) -> list[float]:
    return [v for v in (_num(r.get(key)) for r in run.rows) if v is not None]


def _median(run: Run, key: str) -> float | None:
    vals = _values(run, key)
    return statistics.median(vals) if vals else None


def _total(run: Run, key: str) -> float | None:
    vals = _values(run, key)
    return sum(vals) if vals else None


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value is MISSING:
        return '<span class="absent">—</span>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else html.escape(str(value))
    if isinstance(value, str):
        return html.escape(value)
    return html.escape(json.dumps(value, default=str))


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return _fmt(None)
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m" if hours else f"{minutes} m {sec:02d} s"


def _fmt_config(value: Any) -> str:
    """Config values as written (0.001 stays 0.001, not 0.0010); "" stays visible."""
    if value is MISSING:
        return _fmt(None)
    if isinstance(value, str):
        return html.escape(value) if value else '<span class="absent">""</span>'
    if isinstance(value, bool):
        return "true" if value else "false"
    return html.escape(json.dumps(value, default=str))


def _table(
    header: Iterable[str],
    rows: Iterable[Iterable[str]],
    numeric_from: int = 1,
    numeric_to: int = 10**6,
) -> str:
    """Cells are already-escaped HTML; columns numeric_from..numeric_to-1 are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for row in rows:
        cells = [
            f'<td class="num">{c}</td>' if numeric_from <= i < numeric_to else f"<td>{c}</td>"
            for i, c in enumerate(row)
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --- figures ------------------------------------------------------------------------


def _figure(width: float, height: float):
    """A pyplot-free Agg figure: no global backend switch, nothing left open."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png_img(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return _img_tag(buf.getvalue(), alt)


def _img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _colour(i: int) -> str:
    return f"C{i % 10}"


def _curves(runs: list[Run], metrics: list[tuple[str, str]], title: str) -> str:
    """One subplot per metric, one line per run (same colour for a run everywhere)."""
    present = [(k, label) for k, label in metrics if any(_series(r, k)[0] for r in runs)]
    if not present:
        return ""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(5.4 * len(present), 3.8)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, (key, label) in zip(axes, present, strict=True):
        for i, run in enumerate(runs):
            xs, ys = _series(run, key)
            if xs:
                marker = "." if len(xs) <= 50 else None
                ax.plot(xs, ys, marker=marker, color=_colour(i), label=run.name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _png_img(fig, title)


def _task_curves(run: Run) -> str:
    keys = sorted(
        {k for row in run.rows for k in row if k.startswith("acc_task_")},
        key=lambda k: (len(k), k),
    )
    if not keys:
        return ""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7.5, 3.6)
    ax = fig.subplots()
    for i, key in enumerate(keys):
        xs, ys = _series(run, key)
        ax.plot(
            xs,
            ys,
            marker="." if len(xs) <= 50 else None,
            color=_colour(i),
            label=key.removeprefix("acc_"),
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy per task")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(run.name)
    fig.tight_layout()
    return _png_img(fig, f"per-task accuracy of {run.name}")


def _matrix(raw: Any) -> np.ndarray | None:
    """accuracy_matrix as a float array; ragged rows and nulls become NaN."""
    if not isinstance(raw, list) or not raw or not all(isinstance(r, list) for r in raw):
        return None
    width = max(len(r) for r in raw)
    if width == 0:
        return None
    out = np.full((len(raw), width), np.nan)
    for i, row in enumerate(raw):
        for j, v in enumerate(row):
            n = _num(v)
            if n is not None:
                out[i, j] = n
    return out


def _heatmap(run: Run, m: np.ndarray) -> str:
    rows, cols = m.shape
    side = min(12.0, max(3.5, 0.6 * max(rows, cols) + 2.0))
    fig = _figure(side + 1.0, side)
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
    ax.set_title(f"accuracy matrix: {run.name}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png_img(fig, f"accuracy matrix of {run.name}")


def continual_metrics(m: np.ndarray) -> dict[str, float | None]:
    """Average accuracy, forgetting and BWT from a square matrix R[i, j] (after task i,
    on task j): mean of the last row; mean over old tasks of (best earlier R[l, j] -
    final R[T-1, j]); mean over old tasks of (R[T-1, j] - R[j, j]). Fallback for
    summaries that lack them."""
    t = min(m.shape)
    last = m[t - 1, :t]
    out: dict[str, float | None] = {
        "average_accuracy": float(np.nanmean(last)) if np.isfinite(last).any() else None,
        "forgetting": None,
        "bwt": None,
    }
    if t < 2:
        return out
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: skipped below
        old = range(t - 1)
        forget = [np.nanmax(m[: t - 1, j]) - m[t - 1, j] for j in old]
        bwt = [m[t - 1, j] - m[j, j] for j in old]
    forget = [f for f in forget if np.isfinite(f)]
    bwt = [b for b in bwt if np.isfinite(b)]
    out["forgetting"] = float(np.mean(forget)) if forget else None
    out["bwt"] = float(np.mean(bwt)) if bwt else None
    return out


# --- sections -----------------------------------------------------------------------


def _final_best(run: Run) -> tuple[Any, Any, Any]:
    s = run.summary
    xs, ys = _series(run, "accuracy")
    final = s.get("final_accuracy", ys[-1] if ys else None)
    if "best_accuracy" in s:
        return final, s.get("best_accuracy"), s.get("best_round")
    if ys:
        k = int(np.argmax(ys))
        return final, ys[k], xs[k]
    return final, None, None


def _header(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        final, best, best_round = _final_best(run)
        strategy = run.summary.get("strategy") or (run.config or {}).get("strategy")
        rounds = run.summary.get("rounds_completed", len(run.rows))
        wall = _num(run.summary.get("wall_seconds"))
        if wall is None and run.rows:
            wall = _num(run.rows[-1].get("elapsed_seconds"))
        best_txt = _fmt(_num(best))
        if best_round is not None and _num(best) is not None:
            best_txt += f" (round {_fmt(best_round)})"
        name = f'<span title="{html.escape(str(run.path))}">{html.escape(run.name)}</span>'
        rows.append(
            [name, _fmt(strategy), _fmt(_num(final)), best_txt, _fmt(rounds), _fmt_seconds(wall)]
        )
    table = _table(
        ["run", "strategy", "final accuracy", "best accuracy", "rounds", "wall time"],
        rows,
        numeric_from=2,
    )
    notes = "".join(
        f"<li>{html.escape(r.name)}: {html.escape('; '.join(r.notes))}</li>"
        for r in runs
        if r.notes
    )
    return "<h2>Runs</h2>" + table + (f'<ul class="note">{notes}</ul>' if notes else "")


def _config_section(runs: list[Run]) -> str:
    if len(runs) == 1:
        cfg = runs[0].config
        if cfg is None:
            return ""
        rows = [[html.escape(k), _fmt_config(v)] for k, v in cfg.items()]
        return (
            "<h2>Config</h2><details><summary>full config "
            f"({len(rows)} keys)</summary>{_table(['key', 'value'], rows, numeric_to=0)}</details>"
        )
    have = [r for r in runs if r.config is not None]
    if len(have) < 2:
        return (
            '<h2>Config differences</h2><p class="note">fewer than two runs have a '
            "readable config.toml; nothing to compare</p>"
        )
    keys: dict[str, None] = {}
    for r in have:
        keys.update(dict.fromkeys(r.config))
    differing = []
    for key in keys:
        values = [r.config.get(key, MISSING) for r in have]
        shown = {
            json.dumps(v, sort_keys=True, default=str) if v is not MISSING else "\0" for v in values
        }
        if len(shown) > 1:
            differing.append([html.escape(key)] + [_fmt_config(v) for v in values])
    header = ["key"] + [html.escape(r.name) for r in have]
    same = len(keys) - len(differing)
    body = (
        _table(header, differing, numeric_to=0) if differing else "<p>the configs are identical</p>"
    )
    return (
        f"<h2>Config differences</h2>{body}"
        f'<p class="note">{same} other key(s) are identical in all runs</p>'
    )


def _curves_section(runs: list[Run]) -> str:
    parts = [
        _curves(
            runs,
            [("accuracy", "test accuracy"), ("loss", "test loss")],
            "global model on the test set",
        ),
        _curves(
            runs,
            [("train_accuracy", "train accuracy"), ("train_loss", "train loss")],
            "client training (reported by clients)",
        ),
    ]
    parts += [_task_curves(r) for r in runs]
    body = "".join(f"<figure>{p}</figure>" for p in parts if p)
    if not body:
        return '<h2>Curves</h2><p class="note">no evaluated rounds yet</p>'
    return "<h2>Curves</h2>" + body


def _memory(run: Run, key: str) -> float | None:
    vals = _values(run, key)
    s = _num(run.summary.get(key))
    if s is not None:
        vals.append(s)
    return max(vals) if vals else None


def _resources_section(runs: list[Run]) -> str:
    mem_keys = [k for k in MEMORY_KEYS if any(_memory(r, k) is not None for r in runs)]
    header = [
        "run",
        "median round",
        "median train",
        "median aggregate",
        "median eval",
        "sent (MB)",
        "received (MB)",
        "failures",
    ] + [f"{k} (max)" for k in mem_keys]
    rows = []
    for run in runs:
        sent, received = _total(run, "bytes_sent"), _total(run, "bytes_received")
        failures = _total(run, "failures")
        rows.append(
            [html.escape(run.name)]
            + [
                _fmt_seconds(_median(run, k))
                for k in ("round_seconds", "train_seconds", "aggregate_seconds", "eval_seconds")
            ]
            + [
                _fmt(sent / 1e6 if sent is not None else None, 1),
                _fmt(received / 1e6 if received is not None else None, 1),
                _fmt(int(failures) if failures is not None else None),
            ]
            + [_fmt(_memory(run, k), 1) for k in mem_keys]
        )
    return (
        "<h2>Resources</h2>"
        + _table(header, rows)
        + '<p class="note">times are medians over rounds; MB = 10<sup>6</sup> bytes, '
        "summed over rounds</p>"
    )


def _continual_section(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        if "accuracy_matrix" not in run.summary:
            continue
        m = _matrix(run.summary["accuracy_matrix"])
        if m is None:
            parts.append(
                f'<p class="note">{html.escape(run.name)}: accuracy_matrix is '
                "not a list of lists of numbers</p>"
            )
            continue
        computed = continual_metrics(m)
        rows = []
        for key, label in (
            ("average_accuracy", "average accuracy"),
            ("forgetting", "forgetting"),
            ("bwt", "BWT"),
        ):
            given = _num(run.summary.get(key))
            value = given if given is not None else computed[key]
            source = "summary.json" if given is not None else "computed from the matrix"
            rows.append([label, _fmt(value), source if value is not None else ""])
        parts.append(
            f"<h3>{html.escape(run.name)}</h3><figure>{_heatmap(run, m)}</figure>"
            + _table(["metric", "value", "source"], rows, numeric_to=2)
        )
    return "<h2>Continual learning</h2>" + "".join(parts) if parts else ""


def _partition_section(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        path = run.path / "partition.png"
        try:
            png = path.read_bytes()
        except OSError:
            continue
        if not png.startswith(PNG_SIGNATURE):
            continue
        parts.append(
            f"<figure>{_img_tag(png, f'partition of {run.name}')}"
            f"<figcaption>{html.escape(run.name)}</figcaption></figure>"
        )
    return "<h2>Label distribution across clients</h2>" + "".join(parts) if parts else ""


def render(runs: list[Run]) -> str:
    """The whole page as a string (sections that have no data are left out)."""
    names = ", ".join(r.name for r in runs)
    sections = [
        _header(runs),
        _config_section(runs),
        _curves_section(runs),
        _resources_section(runs),
        _continual_section(runs),
        _partition_section(runs),
    ]
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>perennial report: {html.escape(names)}</title>"
        f"<style>{CSS}</style></head><body>"
        f'<h1>perennial report</h1><p class="note">{len(runs)} run(s); generated '
        f"{generated}</p>" + "".join(sections) + "</body></html>\n"
    )
