"""HTML pieces of the report: the style sheet, value formatting and tables."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from typing import Any

from learning.plugin_objects import display

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


def fmt(value: Any, digits: int = 4) -> str:
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


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return fmt(None)
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m" if hours else f"{minutes} m {sec:02d} s"


def fmt_config(value: Any) -> str:
    """Config values as written (0.001 stays 0.001, not 0.0010); "" stays visible."""
    if value is MISSING:
        return fmt(None)
    if isinstance(value, str):  # an object plug-in: its name, not kilobytes of payload
        return html.escape(display(value)) if value else '<span class="absent">""</span>'
    if isinstance(value, bool):
        return "true" if value else "false"
    return html.escape(json.dumps(value, default=str))


def table(
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
