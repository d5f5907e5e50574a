"""Live progress of a run: a rich progress bar on a terminal, one line per round otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class RoundProgress:
    """Context manager; call it with each round's metrics row."""

    def __init__(self, total_rounds: int, quiet: bool = False):
        self.total = total_rounds
        self.quiet = quiet
        self.started = time.perf_counter()
        self._progress = None
        self._task = None

    def __enter__(self) -> RoundProgress:
        if not self.quiet and (sys.stdout.isatty() or _in_notebook()):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("round"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[metrics]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "rounds", total=self.total, metrics="starting workers..."
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, row: dict[str, Any]) -> None:
        acc, loss = row.get("accuracy"), row.get("loss")
        text = f"acc {acc:.4f}  loss {loss:.4f}" if acc is not None else "acc  -      loss  -     "
        if self._progress is not None:
            self._progress.update(self._task, completed=row["round"], metrics=text)
        elif not self.quiet:
            elapsed = time.perf_counter() - self.started
            eta = elapsed / row["round"] * (self.total - row["round"])
            print(
                f"round {row['round']:>4}/{self.total}  {text}  "
                f"elapsed {elapsed:6.1f}s  ETA {eta:6.1f}s",
                flush=True,
            )


def _in_notebook() -> bool:
    """A Jupyter kernel with ipywidgets, which rich's live bar needs there (without it,
    the one-line-per-round fallback)."""
    if "ipykernel" not in sys.modules or not type(sys.stdout).__module__.startswith("ipykernel"):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True
