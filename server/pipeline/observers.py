"""Observers: what happens to a finished round. The row passes the central-DP release
filter (always the last step before anything is recorded), is kept, checkpointed with
the model and strategy state, and handed to the `on_round` callback (run directory,
TensorBoard, progress) with the releasable per-client histograms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.serverapp.strategy import Strategy

from learning.config import ExperimentConfig
from privacy.release import release_histograms, release_row
from server.checkpoint import save_checkpoint

# Called after every round with the metrics row and histogram data (name -> values).
RoundObserver = Callable[[dict[str, Any], dict[str, np.ndarray]], None]


class Observers:
    def __init__(
        self,
        cfg: ExperimentConfig,
        strategy: Strategy,
        run_dir: Path | None = None,
        on_round: RoundObserver | None = None,
    ) -> None:
        self.cfg, self.strategy, self.run_dir, self.on_round = cfg, strategy, run_dir, on_round
        # A scheduler with state beyond the model (async: the clock, updates in flight)
        # sets this: () -> (JSON meta, arrays), written into the same checkpoint.
        self.extra_state: Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]] | None = None

    def __call__(
        self,
        rnd: int,
        row: dict[str, Any],
        weights: list[np.ndarray],
        norms: np.ndarray,
        rows: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Release, record into `rows`, checkpoint, notify; returns the released row."""
        row = release_row(row, self.cfg)  # under central DP: only what epsilon covers
        rows.append(row)
        every, last = self.cfg.runtime.checkpoint_every, self.cfg.federation.rounds
        if self.run_dir is not None and (rnd % every == 0 or rnd >= last):
            extra = self.extra_state() if self.extra_state is not None else None
            save_checkpoint(self.run_dir, rnd, weights, self.strategy, rows, extra)
        if self.on_round is not None:
            self.on_round(row, release_histograms({"client_update_norms": norms}, self.cfg))
        return row
