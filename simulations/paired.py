"""Paired differences against a baseline variant: the honest way to read a small effect.

Seed-to-seed spread in federated runs is often larger than the effect under study (a
fault, a defence). Cells that differ only in the variant share their seed's data split,
initial model and cohorts, so the per-seed difference cancels that spread. For each
variant and each seed present in both, d = metric(variant) - metric(baseline), where the
metric is the mean test accuracy of the last `LAST` evaluated rounds (one round's
accuracy moves by points); reported as mean and standard error over seeds.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from server.run_dir import read_metrics

LAST = 5


def last_mean(rows: list[dict[str, Any]], last: int = LAST) -> float | None:
    """Mean accuracy of the last `last` evaluated rounds."""
    accs = [r["accuracy"] for r in rows if r.get("accuracy") is not None][-last:]
    return statistics.fmean(accs) if accs else None


def paired_table(cells: list, out: Path, baseline: str) -> list[dict[str, Any]]:
    """One row per (variant, group) other than the baseline: paired differences."""
    metric: dict[tuple[str, str, Any], float] = {}
    for cell in cells:
        cell_dir = out / "cells" / cell.label
        if not (cell_dir / "summary.json").is_file():
            continue
        value = last_mean(read_metrics(cell_dir))
        if value is not None:
            metric[(cell.variant, "/".join(f"{k}={v}" for k, v in cell.axes), cell.seed)] = value
    table = []
    keys = sorted({(v, g) for v, g, _ in metric if v != baseline})
    for variant, group in keys:
        seeds = sorted(s for v, g, s in metric if (v, g) == (variant, group))
        pairs = [
            (s, metric[(variant, group, s)] - metric[(baseline, group, s)])
            for s in seeds
            if (baseline, group, s) in metric
        ]
        if not pairs:
            continue
        d = [x for _, x in pairs]
        se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else None
        table.append(
            {
                "variant": variant,
                "group": group,
                "baseline": baseline,
                "seeds": len(d),
                "mean_difference": statistics.fmean(d),
                "standard_error": se,
                "per_seed": {str(s): x for s, x in pairs},
                "baseline_mean": statistics.fmean(metric[(baseline, group, s)] for s, _ in pairs),
            }
        )
    return table


def write_paired(table: list[dict[str, Any]], out: Path) -> str:
    """`results_paired.csv` and the markdown section (returned) for results.md."""
    with open(out / "results_paired.csv", "w", newline="") as f:
        fields = ["variant", "group", "baseline", "seeds", "mean_difference", "standard_error"]
        writer = csv.DictWriter(f, fieldnames=[*fields, "per_seed"])
        writer.writeheader()
        for r in table:
            writer.writerow({**{k: r[k] for k in fields}, "per_seed": r["per_seed"]})
    if not table:
        return ""
    pct = lambda v: "-" if v is None else f"{100 * v:+.2f}"  # noqa: E731
    lines = [
        f"### Paired against `{table[0]['baseline']}` (mean accuracy of the last {LAST} "
        "rounds; difference per seed, points)",
        "",
        "| variant | group | baseline % | per seed | mean ± SE |",
        "|---|---|---:|---|---:|",
    ]
    for r in table:
        per_seed = ", ".join(f"{s}: {pct(x)}" for s, x in r["per_seed"].items())
        se = "-" if r["standard_error"] is None else f"{100 * r['standard_error']:.2f}"
        lines.append(
            f"| {r['variant']} | {r['group'] or '-'} | {100 * r['baseline_mean']:.2f} | "
            f"{per_seed} | {pct(r['mean_difference'])} ± {se} |"
        )
    return "\n".join(lines) + "\n"
