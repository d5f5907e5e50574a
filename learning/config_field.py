"""How a config key is declared: a dataclass field carrying its help text and rules.

Every section module (config_schema.py, config_devices.py, config_personal.py) declares
its keys with `key_field`; `config_keys.check_value` reads the rules back.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def key_field(default: Any, help: str, **rules: Any) -> Any:
    """A config field: its default, its `perennial keys` help and its value rules."""
    return field(default=default, metadata={"help": help, **rules})
