"""The HTML report that compares runs: one self-contained page, figures embedded.

runs.py reads run directories, sections.py builds each section, html_parts.py formats
values and tables; the figures are drawn by server/plots/report_figures.py and the
continual metrics come from learning/continual_metrics.py.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from learning.errors import ConfigError
from server.run_dir import write_atomic
from simulations.report.html_parts import CSS
from simulations.report.runs import Run, load_run, name_runs
from simulations.report.sections import (
    config_section,
    continual_section,
    curves_section,
    faults_section,
    header,
    partition_section,
    resources_section,
)

__all__ = ["Run", "load_run", "render", "write_report"]


def write_report(run_dirs: list[Path], out_path: Path) -> Path:
    """Write the comparison page for `run_dirs` to `out_path` and return `out_path`."""
    if not run_dirs:
        raise ConfigError(
            "no run directories given; pass one or more folders printed by perennial run"
        )
    runs = [load_run(Path(p)) for p in run_dirs]
    name_runs(runs)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, render(runs))
    out_path.chmod(0o644)  # mkstemp makes it owner-only; a report is meant to be shared
    return out_path


def render(runs: list[Run]) -> str:
    """The whole page as a string (sections that have no data are left out)."""
    names = ", ".join(r.name for r in runs)
    sections = [
        header(runs),
        config_section(runs),
        curves_section(runs),
        resources_section(runs),
        faults_section(runs),
        continual_section(runs),
        partition_section(runs),
    ]
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>perennial report: {html.escape(names)}</title>"
        f"<style>{CSS}</style></head><body>"
        f'<h1>perennial report</h1><p class="note">{len(runs)} run(s); generated '
        f"{generated}</p>" + "".join(sections) + "</body></html>\n"
    )
