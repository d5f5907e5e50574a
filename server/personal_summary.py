"""What summary.json says about a local-eval run: the last locally evaluated row's
numbers, the global model's central accuracy beside them, and what personal state
costs on disk per client (docs/personalised.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.config import ExperimentConfig
from server.pipeline.local_eval import FIELDS
from strategies.personalised import PERSONAL, state_bytes


def personal_state_bytes(cfg: ExperimentConfig, weights: list[np.ndarray]) -> int:
    """Bytes of one client's personal state per stored version (the client store keeps
    the last two): 0 for fedavg and fedavg-ft."""
    kind = PERSONAL.get(cfg.strategy.strategy)
    if kind is None:
        return 0
    mask = [True] * len(weights)
    if kind in ("head", "bn"):
        from learning.federated_data import dataset_for
        from learning.models import build_model
        from learning.personal_layers import layer_roles

        ds = dataset_for(cfg)
        model = build_model(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
        mask = list(layer_roles(model).mask(kind))
    shapes = [w.shape for w in weights]
    return state_bytes(kind, shapes, [w.dtype.itemsize for w in weights], mask)


def personal_summary(
    rows: list[dict[str, Any]], cfg: ExperimentConfig, weights: list[np.ndarray]
) -> dict[str, Any]:
    """{} unless local-eval; fields withheld from the rows (central DP) stay None."""
    if not cfg.personal.local_eval:
        return {}
    done = [r for r in rows if r.get("local_eval_clients") is not None]
    last = done[-1] if done else {}
    central = [r for r in rows if r.get("accuracy") is not None]
    return {
        **{k: last.get(k) for k in FIELDS},
        "global_accuracy": central[-1]["accuracy"] if central else None,
        "personal_state_bytes_per_client": personal_state_bytes(cfg, weights),
    }
