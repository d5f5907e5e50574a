"""A grid's comparison tables: `results.md` (ranked per group, continual metrics where
they exist) and `results.csv`, from the rows `bench.summarise_grid` makes."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from server.run_dir import write_atomic

CONTINUAL_KEYS = ("average_accuracy", "forgetting", "bwt")
# Continual runs also have FWT (None for class-incremental) and what each method costs
# (server/continual_methods.cost_summary): results.csv has `<key>_mean` and `<key>_std`.
CONTINUAL_COST_KEYS = (
    "fwt",
    "client_state_bytes",
    "server_state_bytes",
    "message_extra_bytes",
    "report_bytes",
    "server_seconds",
    "client_seconds_per_update",
)
# local-eval runs (docs/personalised.md): results.csv columns of the same names (means
# over seeds) and `<key>_std`
PERSONAL_KEYS = (
    "personalised_accuracy",
    "worst10_accuracy",
    "global_accuracy",
    "new_client_accuracy",
)


def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.2f} ± {100 * (std or 0):.2f}"


def _hours(value: float | None, clocked: bool = True) -> str:
    """Virtual hours to target: "-" for runs without a clock, "never" if not reached."""
    if not clocked:
        return "-"
    return "never" if value is None else f"{value:.2f}"


def _epsilon(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.2f}"


def write_tables(table: list[dict[str, Any]], out: Path, target: float) -> None:
    """`results.md` (ranked per group) and `results.csv`."""
    lines = []
    private = any(r.get("epsilon") is not None for r in table)
    for group in dict.fromkeys(r["group"] for r in table):
        rows = [r for r in table if r["group"] == group]
        if any("average_accuracy_mean" in r for r in rows):
            lines += [f"### {group}", "", *_continual_lines(rows)]
            continue
        if any("personalised_accuracy" in r for r in rows):
            lines += [f"### {group}", "", *_personal_lines(rows)]
            continue
        lines += [
            f"### {group}",
            "",
            f"| rank | variant |{' epsilon (RDP) | epsilon (PLD) |' if private else ''} "
            f"final acc % | best acc % "
            f"| rounds to {100 * target:.0f}% | virtual h to {100 * target:.0f}% | MB sent "
            "| MB received | wall s | seeds |",
            f"|---:|---|{'---:|---:|' if private else ''}---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for rank, r in enumerate(rows, start=1):
            reach = (
                f"{r['rounds_to_target']:.1f} ({r['reached']})"
                if r["rounds_to_target"]
                else (f"never ({r['reached']})")
            )
            fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            eps = (
                f" {_epsilon(r.get('epsilon'))} | {_epsilon(r.get('epsilon_pld'))} |"
                if private
                else ""
            )
            hours = _hours(
                r.get("virtual_hours_to_target"), r.get("virtual_hours_total") is not None
            )
            lines.append(
                f"| {rank} | {r['variant']} |{eps} {_pct(r['final_mean'], r['final_std'])} | "
                f"{_pct(r['best_mean'], r['best_std'])} | {reach} | {hours}"
                f" | {fmt(r['mb_sent'])} | "
                f"{fmt(r['mb_received'])} | {fmt(r['wall_seconds'])} | {r['seeds']} |"
            )
        lines.append("")
    write_atomic(out / "results.md", "\n".join(lines))
    with open(out / "results.csv", "w", newline="") as f:
        fields = list(dict.fromkeys(k for r in table for k in r)) or ["variant"]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(table)


def _continual_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A continual group's table: ranked by average accuracy, with forgetting and BWT."""
    rows = sorted(rows, key=lambda r: -(r.get("average_accuracy_mean") or -1))
    lines = [
        "| rank | variant | average acc % | forgetting (points) | BWT (points) | FWT (points) "
        "| client state KB | server state KB | extra KB / message | client s / update "
        "| wall s | seeds |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rank, r in enumerate(rows, start=1):
        wall = "-" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}"
        keys = (*CONTINUAL_KEYS, "fwt")
        cells = [_pct(r.get(f"{k}_mean"), r.get(f"{k}_std")) for k in keys]
        for key in ("client_state_bytes", "server_state_bytes", "message_extra_bytes"):
            v = r.get(f"{key}_mean")
            cells.append("-" if v is None else f"{v / 1e3:.1f}")
        secs = r.get("client_seconds_per_update_mean")
        cells.append("-" if secs is None else f"{secs:.3f}")
        lines.append(f"| {rank} | {r['variant']} | {' | '.join(cells)} | {wall} | {r['seeds']} |")
    return lines + [""]


def _personal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A local-eval group's table: ranked by personalised accuracy, with the worst-off
    tenth, the global model's central accuracy and the held-out clients'."""
    rows = sorted(rows, key=lambda r: -(r.get("personalised_accuracy") or -1))
    lines = [
        "| rank | variant | personalised acc % | worst 10% acc % | global acc % "
        "| new-client acc % | wall s | seeds |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rank, r in enumerate(rows, start=1):
        wall = "-" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}"
        cells = [_pct(r.get(k), r.get(f"{k}_std")) for k in PERSONAL_KEYS]
        lines.append(f"| {rank} | {r['variant']} | {' | '.join(cells)} | {wall} | {r['seeds']} |")
    return lines + [""]
