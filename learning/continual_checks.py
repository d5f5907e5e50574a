"""Refusals for the continual methods that talk to the server (FOT, TARGET): config
combinations (no model needed) and what the model must have (built once, preflight)."""

from __future__ import annotations

from learning.config_schema import ASYNC_STRATEGIES, Sections
from learning.errors import ConfigError

SERVER_METHODS = ("fot", "target")


def check_server_methods(cfg: Sections) -> None:
    """One line for a combination FOT or TARGET cannot run with."""
    method = cfg.continual.cl_method
    if cfg.continual.scenario == "none" or method not in SERVER_METHODS:
        return
    if method == "fot" and cfg.privacy.dp != "none":
        raise ConfigError(
            f"cl-method 'fot' with dp={cfg.privacy.dp!r} is refused: its activation "
            "statistics are derived from client data and no DP accounting covers them"
        )
    if cfg.privacy.secure_aggregation:
        raise ConfigError(f"cl-method {method!r} with secure-aggregation is not supported")
    if cfg.strategy.strategy in ASYNC_STRATEGIES:
        raise ConfigError(
            f"cl-method {method!r} needs synchronous rounds; use a strategy other than "
            f"{cfg.strategy.strategy!r}"
        )
    if cfg.continual.task_seconds > 0:
        raise ConfigError(f"cl-method {method!r} changes tasks by rounds only; set task-seconds=0")


def check_continual_model(method: str, model, name: str) -> None:
    """FOT projects dense layers only; TARGET's generator matches batch-norm statistics
    and upsamples twice (image sides divisible by 4)."""
    if method == "fot":
        from learning.projection import check_dense_only

        check_dense_only([tuple(w.shape) for w in model.get_weights()], name)
    if method == "target":
        from learning.personal_layers import layer_roles

        if not any(layer_roles(model).bn):
            raise ConfigError(
                f"cl-method 'target' matches batch-norm statistics, but model {name!r} has "
                'no batch norm; use model = "mlp-bn" or "cnn-bn"'
            )
        h, w = model.input_shape[1:3]
        if h % 4 or w % 4:
            raise ConfigError(f"cl-method 'target' needs image sides divisible by 4, got {h}x{w}")
