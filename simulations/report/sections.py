"""The report's sections, each an HTML string (empty when it has no data)."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from learning.continual_metrics import matrix_metrics
from server.plots.report_figures import curves, heatmap, img_tag, task_curves
from simulations.report.html_parts import MISSING, fmt, fmt_config, fmt_seconds, table
from simulations.report.runs import Run, matrix, median, num, series, total, values

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEMORY_KEYS = ("peak_rss_mb", "server_rss_mb", "workers_rss_mb")


def _curves(runs: list[Run], metrics: list[tuple[str, str]], title: str) -> str:
    lines = [(r.name, {k: series(r, k) for k, _ in metrics}) for r in runs]
    return curves(lines, metrics, title)


def _task_curves(run: Run) -> str:
    keys = sorted(
        {k for row in run.rows for k in row if k.startswith("acc_task_")},
        key=lambda k: (len(k), k),
    )
    return task_curves(run.name, {k: series(run, k) for k in keys})


def final_best(run: Run) -> tuple[Any, Any, Any]:
    s = run.summary
    xs, ys = series(run, "accuracy")
    final = s.get("final_accuracy", ys[-1] if ys else None)
    if "best_accuracy" in s:
        return final, s.get("best_accuracy"), s.get("best_round")
    if ys:
        k = int(np.argmax(ys))
        return final, ys[k], xs[k]
    return final, None, None


def header(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        final, best, best_round = final_best(run)
        strategy = run.summary.get("strategy") or (run.config or {}).get("strategy")
        rounds = run.summary.get("rounds_completed", len(run.rows))
        wall = num(run.summary.get("wall_seconds"))
        if wall is None and run.rows:
            wall = num(run.rows[-1].get("elapsed_seconds"))
        best_txt = fmt(num(best))
        if best_round is not None and num(best) is not None:
            best_txt += f" (round {fmt(best_round)})"
        name = f'<span title="{html.escape(str(run.path))}">{html.escape(run.name)}</span>'
        rows.append(
            [name, fmt(strategy), fmt(num(final)), best_txt, fmt(rounds), fmt_seconds(wall)]
        )
    runs_table = table(
        ["run", "strategy", "final accuracy", "best accuracy", "rounds", "wall time"],
        rows,
        numeric_from=2,
    )
    notes = "".join(
        f"<li>{html.escape(r.name)}: {html.escape('; '.join(r.notes))}</li>"
        for r in runs
        if r.notes
    )
    return "<h2>Runs</h2>" + runs_table + (f'<ul class="note">{notes}</ul>' if notes else "")


def config_section(runs: list[Run]) -> str:
    if len(runs) == 1:
        cfg = runs[0].config
        if cfg is None:
            return ""
        rows = [[html.escape(k), fmt_config(v)] for k, v in cfg.items()]
        return (
            "<h2>Config</h2><details><summary>full config "
            f"({len(rows)} keys)</summary>{table(['key', 'value'], rows, numeric_to=0)}</details>"
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
            differing.append([html.escape(key)] + [fmt_config(v) for v in values])
    header = ["key"] + [html.escape(r.name) for r in have]
    same = len(keys) - len(differing)
    body = (
        table(header, differing, numeric_to=0) if differing else "<p>the configs are identical</p>"
    )
    return (
        f"<h2>Config differences</h2>{body}"
        f'<p class="note">{same} other key(s) are identical in all runs</p>'
    )


def curves_section(runs: list[Run]) -> str:
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


def memory(run: Run, key: str) -> float | None:
    vals = values(run, key)
    s = num(run.summary.get(key))
    if s is not None:
        vals.append(s)
    return max(vals) if vals else None


def resources_section(runs: list[Run]) -> str:
    mem_keys = [k for k in MEMORY_KEYS if any(memory(r, k) is not None for r in runs)]
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
        sent, received = total(run, "bytes_sent"), total(run, "bytes_received")
        failures = total(run, "failures")
        rows.append(
            [html.escape(run.name)]
            + [
                fmt_seconds(median(run, k))
                for k in ("round_seconds", "train_seconds", "aggregate_seconds", "eval_seconds")
            ]
            + [
                fmt(sent / 1e6 if sent is not None else None, 1),
                fmt(received / 1e6 if received is not None else None, 1),
                fmt(int(failures) if failures is not None else None),
            ]
            + [fmt(memory(run, k), 1) for k in mem_keys]
        )
    return (
        "<h2>Resources</h2>"
        + table(header, rows)
        + '<p class="note">times are medians over rounds; MB = 10<sup>6</sup> bytes, '
        "summed over rounds</p>"
    )


def continual_section(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        if "accuracy_matrix" not in run.summary:
            continue
        m = matrix(run.summary["accuracy_matrix"])
        if m is None:
            parts.append(
                f'<p class="note">{html.escape(run.name)}: accuracy_matrix is '
                "not a list of lists of numbers</p>"
            )
            continue
        computed = matrix_metrics(m)
        rows = []
        for key, label in (
            ("average_accuracy", "average accuracy"),
            ("forgetting", "forgetting"),
            ("bwt", "BWT"),
        ):
            given = num(run.summary.get(key))
            value = given if given is not None else computed[key]
            source = "summary.json" if given is not None else "computed from the matrix"
            rows.append([label, fmt(value), source if value is not None else ""])
        parts.append(
            f"<h3>{html.escape(run.name)}</h3><figure>{heatmap(run.name, m)}</figure>"
            + table(["metric", "value", "source"], rows, numeric_to=2)
        )
    return "<h2>Continual learning</h2>" + "".join(parts) if parts else ""


def partition_section(runs: list[Run]) -> str:
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
            f"<figure>{img_tag(png, f'partition of {run.name}')}"
            f"<figcaption>{html.escape(run.name)}</figcaption></figure>"
        )
    return "<h2>Label distribution across clients</h2>" + "".join(parts) if parts else ""


def faults_section(runs: list[Run]) -> str:
    """A deployment's fault events (summary.json `fault_events`): which SuperNode was
    lost, rejoined or joined in which round, rounds that timed out, resumes."""
    rows = []
    for run in runs:
        for e in run.summary.get("fault_events") or []:
            detail = e.get("node") or (
                f"after round {e['after_round']}" if "after_round" in e else ""
            )
            why = e.get("reason") or (f"{e['waiting']} waiting" if "waiting" in e else "")
            cells = [run.name, e.get("round"), e.get("event"), detail, why]
            rows.append([html.escape(str(c)) for c in cells])
    if not rows:
        return ""
    return "<h2>Deployment faults</h2>" + table(
        ["run", "round", "event", "node", "detail"], rows, numeric_to=2
    )
