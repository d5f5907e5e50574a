"""Each key's rules, applied: the flat/dotted key names, "did you mean", and coercion of
a value to its field's type and range. The sections themselves are config_schema.py."""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral
from typing import Any

from learning.config_schema import SECTIONS
from learning.errors import ConfigError
from learning.plugin_settings import TABLE, is_setting, setting_key


def key_spec() -> dict[str, tuple[str, dataclasses.Field]]:
    """kebab-case key -> (section name, dataclass field)."""
    return dict(_SPEC)


def _build_spec() -> dict[str, tuple[str, dataclasses.Field]]:
    spec = {}
    for name, section in SECTIONS.items():
        for f in dataclasses.fields(section):
            spec[f.name.replace("_", "-")] = (name, f)
    return spec


_SPEC = _build_spec()
_DEFAULTS = {k: f.default for k, (_, f) in _SPEC.items()}


def _similar(a: str, b: str) -> bool:
    if a in b or b in a:
        return True
    common = sum(1 for x, y in zip(a, b, strict=False) if x == y)
    return common >= max(3, int(0.7 * max(len(a), len(b))))


def _unknown(key: str, candidates: list[str]) -> ConfigError:
    close = [k for k in candidates if _similar(k, key)]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}; run `perennial keys` to list valid keys")


def canonical_key(key: str) -> str:
    """The flat kebab-case name of `key`, given flat (`lr`) or as `section.key`
    (`train.lr`, what Flower makes of a `[train]` table); a one-line ConfigError for an
    unknown key, a typo (with a "did you mean"), or a key under the wrong section. A
    plug-in setting `plugin.<name>` is its own canonical form (plugin_settings.py)."""
    if key in _SPEC:
        return key
    if is_setting(key):
        return setting_key(key)
    if key == TABLE:
        raise ConfigError(
            f"{TABLE!r} is the table of plug-in settings; write {TABLE}.NAME=VALUE "
            f"(or [{TABLE}] NAME = VALUE in a TOML file)"
        )
    if "." not in key:
        raise _unknown(key, list(_SPEC))
    section, name = key.split(".", 1)
    if section not in SECTIONS:
        raise _unknown(key, [f"{s}.{k}" for k, (s, _) in _SPEC.items()] + list(SECTIONS))
    if name not in _SPEC:
        raise _unknown(key, [f"{s}.{k}" for k, (s, _) in _SPEC.items() if s == section])
    home = _SPEC[name][0]
    if home != section:
        raise ConfigError(
            f"config key {name!r} belongs in section [{home}], not [{section}]; "
            f"write {home}.{name} (or {name})"
        )
    return name


def flat_values(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every key canonical; a key given twice with two values is an error."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in values.items():
        flat = canonical_key(key)
        if flat in out and out[flat] != value:
            raise ConfigError(
                f"config key {flat!r} is given twice ({given[flat]}={out[flat]!r}, "
                f"{key}={value!r}); keep one"
            )
        out[flat], given[flat] = value, key
    return out


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[t]


def check_value(key: str, value: Any) -> Any:
    """`value` for the kebab-case `key`, coerced (int <-> float) and checked against the
    key's type, range and fixed choices; a one-line ConfigError otherwise."""
    return coerce(key, _SPEC[key][1], value)


def coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    """`check_value` for a known field (the parser has already looked it up)."""
    want = type(f.default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if want is int and isinstance(value, Integral) and not isinstance(value, (bool, int)):
        value = int(value)  # NumPy integers, as the loaders may be handed
    if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
        example = f"{key}={f.default!r}" if want is not str else f'{key}="{f.default}"'
        raise ConfigError(
            f"config key {key!r} must be {_type_name(want)}, got {value!r}; e.g. --set {example}"
        )
    if want is float and not math.isfinite(value):
        raise ConfigError(f"config key {key!r} must be finite, got {value!r}")
    m = f.metadata
    if "choices" in m and value not in m["choices"]:
        raise ConfigError(f"unknown {key} {value!r}; expected one of {sorted(m['choices'])}")
    for rule, ok, text in (
        ("min", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
        ("max", lambda v, b: v <= b, "<="),
    ):
        if rule in m and not ok(value, m[rule]):
            raise ConfigError(f"config key {key!r} must be {text} {m[rule]}, got {value!r}")
    return value
