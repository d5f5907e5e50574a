"""Plug-ins passed as Python objects (the Python API) rather than by import path.

A function or class defined in a notebook cannot be imported by a Ray worker, so the
API sends it by value: cloudpickle, compressed, base64 in the config value itself,
`"pickle:<name>:<payload>"`. The value travels wherever the config goes (every
message, `config.toml`, so `--resume` works) and the worker unpickles it once.

Unpickling runs code, so it happens only in processes that trust the config's author:
the simulation driver and the Ray workers it starts (both set `TRUST_ENV`). A Flower
SuperNode never does; in a deployment a plug-in is named by import path.
"""

from __future__ import annotations

import base64
import os
import re
import zlib
from typing import Any

from learning.errors import ConfigError

PREFIX = "pickle:"
# Set by `perennial run`/`bench`, the Python API and the Ray workers they start.
TRUST_ENV = "PERENNIAL_TRUST_PICKLED_PLUGINS"

_LOADED: dict[str, Any] = {}


def is_pickled(value: str) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def pack(obj: Any) -> str:
    """The config value that carries `obj` by value (cloudpickle: notebook code too)."""
    import cloudpickle

    payload = base64.b64encode(zlib.compress(cloudpickle.dumps(obj), 9)).decode("ascii")
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    name = re.sub(r"[^A-Za-z0-9_.]", "_", name)
    return f"{PREFIX}{name}:{payload}"


def object_name(value: str) -> str:
    """The packed object's (sanitised) name: a label or directory name for it."""
    return value[len(PREFIX) :].split(":", 1)[0]


def display(value: str) -> str:
    """A short name for errors and summaries (the payload is kilobytes)."""
    return f"<{object_name(value)} object>" if is_pickled(value) else value


def unpack(key: str, value: str) -> Any:
    """The object a pickled value carries, loaded once per process."""
    if value in _LOADED:
        return _LOADED[value]
    if os.environ.get(TRUST_ENV) != "1":
        raise ConfigError(
            f"{key} {display(value)}: a plug-in passed as a Python object runs only in a "
            "simulation started by perennial (not on a SuperNode); name it by import path "
            '"module:attribute" instead'
        )
    import cloudpickle

    try:
        payload = value[len(PREFIX) :].split(":", 1)[1]
        obj = cloudpickle.loads(zlib.decompress(base64.b64decode(payload, validate=True)))
    except Exception as exc:  # a damaged value, or the object's own module is missing here
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{key} {display(value)}: cannot load the object passed from the Python API "
            f"({type(exc).__name__}: {first}); modules it imports must be installed where "
            "the run executes"
        ) from None
    _LOADED[value] = obj
    return obj


def trust_pickled_plugins() -> None:
    """Mark this process (and the Ray workers it starts) as a simulation driver."""
    os.environ[TRUST_ENV] = "1"
