"""Reading an experiment: TOML files (flat keys or the section tables) and `--set` text.

Both forms name the same keys: `lr = 0.05` at the top level, or `lr = 0.05` under
`[train]` (which Flower's run config flattens to `train.lr`). `config_values` turns
every key into its canonical flat kebab-case name as it merges, so a later source
overrides an earlier one whichever form each uses.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from learning.config_keys import canonical_key, flat_values
from learning.config_schema import SECTIONS
from learning.errors import ConfigError
from learning.plugin_settings import TABLE


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as TOML, else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}; e.g. --set rounds=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a one-line ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} not found; pass an existing TOML file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{what} {str(p)!r} is not valid TOML: {msg}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's experiment keys, canonical and flat.

    Keys may be flat at the top level or grouped in the section tables `perennial keys`
    prints (`[train] lr = 0.05`); a top-level `[experiment]` table is also accepted, and
    `[plugin]` holds the plug-ins' own settings (`plugin.<name>` once flat).
    """
    p = Path(path)
    data = read_toml(p)
    if "experiment" in data and isinstance(data["experiment"], dict):
        rest = {k: v for k, v in data.items() if k != "experiment"}
        data = {**data["experiment"], **rest}
    return table_values(data, f"config file {str(p)!r}")


def table_values(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keys flat at the top level or grouped in section tables (and `[plugin]`), as a
    TOML file, a grid table or a Python API dict writes them: canonical and flat."""
    dotted: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(value, Mapping):
            dotted[key] = value
            continue
        if key not in SECTIONS and key != TABLE:
            raise ConfigError(
                f"{where} has a table [{key}], which is not a section; "
                f"sections are {list(SECTIONS)}, and [{TABLE}] for plug-in settings"
            )
        for name, inner in value.items():
            if isinstance(inner, Mapping):
                raise ConfigError(
                    f"{where} has a table [{key}.{name}]; sections hold keys, not tables"
                )
            dotted[f"{key}.{name}"] = inner
    return flat_values(dotted)


def config_values(
    toml_path: str | Path | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The user's own keys, canonical: the TOML file's, then the `--set` overrides
    (each `key=value` or `section.key=value`); names are checked, values are not yet."""
    values: dict[str, Any] = {}
    if toml_path:
        values.update(load_toml(toml_path))
    for text in overrides or []:
        key, value = parse_override(text)
        values[canonical_key(key)] = value
    return values


def to_toml(values: dict[str, Any]) -> str:
    """Render keys as TOML (strings quoted, numbers and booleans as such; nested dicts
    as tables)."""
    import tomli_w

    return tomli_w.dumps(values)
