"""The `[plugin]` table: a user's own settings for their plug-ins, in one documented place.

perennial's keys are fixed and checked by name (a typo is refused with a "did you mean");
a plug-in's settings are the user's own names, so they live apart, under `plugin.`: in a
TOML file as `[plugin] width = 64`, on the command line as `--set plugin.width=64`, and
flat as `plugin.width` wherever the config is flat (config.toml, client messages, the
digest). Values are scalars (a string, an integer, a finite number or true/false),
because Flower's run config and message configs hold nothing else. The settings reach a
plug-in that asks for them (learning/plugins.py: a parameter named `settings`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from learning.errors import ConfigError

TABLE = "plugin"
PREFIX = TABLE + "."
Scalar = str | int | float | bool
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_INT64 = 2**63


def is_setting(key: str) -> bool:
    """Whether a (flat or dotted) key is a plug-in setting, `plugin.<name>`."""
    return key.startswith(PREFIX)


def setting_key(key: str) -> str:
    """`key` (`plugin.<name>`) if its name is well formed; a one-line ConfigError if not."""
    name = key[len(PREFIX) :]
    if not _NAME.match(name):
        raise ConfigError(
            f"plug-in setting {key!r}: a name is letters, digits, '-' and '_' (starting "
            "with a letter), one level under [plugin]; e.g. --set plugin.width=64"
        )
    return key


def check_setting(key: str, value: Any) -> Scalar:
    """`value` of the setting `key` if it is a scalar Flower can carry; one line if not."""
    ok = isinstance(value, (str, bool, float)) or (
        isinstance(value, int) and -_INT64 <= value < _INT64
    )
    if not ok:
        raise ConfigError(
            f"plug-in setting {key!r} must be a string, an integer, a number or true/false "
            f"(Flower's run config holds scalars), got {value!r}; e.g. --set {key}=64"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"plug-in setting {key!r} must be finite, got {value!r}")
    return value


class PluginSettings(Mapping[str, Scalar]):
    """The settings by name (without the `plugin.` prefix): read-only and hashable, so a
    config holding them stays a cache key. Equal only when names, values and types
    match (1, 1.0 and true are three settings), as in the digest's JSON."""

    __slots__ = ("_items",)

    def __init__(self, values: Mapping[str, Scalar] | None = None) -> None:
        self._items = tuple(sorted((values or {}).items()))

    def __getitem__(self, name: str) -> Scalar:
        for key, value in self._items:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _typed(self) -> tuple:
        return tuple((k, type(v).__name__, v) for k, v in self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PluginSettings) and self._typed() == other._typed()

    def __hash__(self) -> int:
        return hash(self._typed())

    def __repr__(self) -> str:
        return f"PluginSettings({dict(self._items)!r})"

    def __reduce__(self) -> tuple:
        return (PluginSettings, (dict(self._items),))

    def flat(self) -> dict[str, Scalar]:
        """The settings as flat config keys, `plugin.<name>`."""
        return {PREFIX + k: v for k, v in self._items}


NO_SETTINGS = PluginSettings()


def settings_of(values: Mapping[str, Any]) -> PluginSettings:
    """The checked settings among canonical flat keys (the others are left alone)."""
    return PluginSettings(
        {k[len(PREFIX) :]: check_setting(k, v) for k, v in values.items() if is_setting(k)}
    )
