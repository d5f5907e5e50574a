"""Plug-ins passed as Python objects (the Python API) rather than by import path.

A function or class defined in a notebook cannot be imported by a Ray worker, so the
API sends it by value: cloudpickle, compressed, base64 in the config value itself,
`"pickle:<name>:<payload>"`. The value travels wherever the config goes (every
message, `config.toml`, so `--resume` works) and a worker unpickles it once.

Unpickling runs code, so a payload is loaded only where it is trusted:
- in the process that packed it (`pack` remembers what it made);
- in the Ray workers of a simulation (`TRUST_ENV`, set only in their runtime
  environment by simulations/runtime.py): every value they receive comes from a driver
  that has already refused the payloads it does not trust;
- a payload read from a file (`--resume`, a config or grid file) only after an explicit
  `trust_payloads` (`perennial run --resume RUN --trust-pickled-plugins`).
A Flower SuperNode never loads one; in a deployment, name plug-ins by import path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zlib
from collections.abc import Iterable
from typing import Any

from learning.errors import ConfigError

PREFIX = "pickle:"
TRUST_ENV = "PERENNIAL_TRUST_PICKLED_PLUGINS"  # a simulation's Ray workers only
# A payload goes into every training message: an object that captured a data set (a
# loader closing over its arrays) must load them from a file instead.
MAX_BYTES = 1 << 20

_LOADED: dict[str, Any] = {}
_TRUSTED: set[str] = set()  # sha256 of the payloads this process packed or was told to trust


def is_pickled(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


def pack(key: str, obj: Any) -> str:
    """The config value that carries `obj` by value (cloudpickle: notebook code too);
    trusted in this process from now on."""
    import cloudpickle

    name = re.sub(r"[^A-Za-z0-9_.]", "_", getattr(obj, "__qualname__", None) or "object")
    try:
        raw = cloudpickle.dumps(obj)
    except Exception as exc:  # a lock, a socket, an open file in its closure
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{key} <{name} object> cannot be sent to the workers ({first}); keep "
            "unpicklable things (locks, files, connections) out of it"
        ) from None
    payload = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
    if len(payload) > MAX_BYTES:
        raise ConfigError(
            f"{key} <{name} object> is {len(payload) / 1e6:.1f} MB by value (it holds data, "
            "e.g. arrays it closes over) and would travel in every message; read the data "
            "from a file inside it, or name it by import path"
        )
    value = f"{PREFIX}{name}:{payload}"
    _TRUSTED.add(_fingerprint(value))
    return value


def object_name(value: str) -> str:
    """The packed object's (sanitised) name: a label or directory name for it."""
    return value[len(PREFIX) :].split(":", 1)[0]


def display(value: str) -> str:
    """A short name for errors, summaries and reports (the payload is kilobytes)."""
    return f"<{object_name(value)} object>" if is_pickled(value) else value


def trust_payloads(values: Iterable[object]) -> None:
    """Trust the pickled values among `values` (a run directory's own config, read back
    on an explicit request): they run code when loaded."""
    _TRUSTED.update(_fingerprint(v) for v in values if is_pickled(v))


def unpack(key: str, value: str) -> Any:
    """The object a trusted pickled value carries, loaded once per process."""
    if value in _LOADED:
        return _LOADED[value]
    if _fingerprint(value) not in _TRUSTED and os.environ.get(TRUST_ENV) != "1":
        raise ConfigError(
            f"{key} {display(value)}: a plug-in passed as a Python object runs code when "
            "loaded, so it is loaded only in the process that passed it and its simulation "
            "workers; to resume such a run add --trust-pickled-plugins (api.run(..., "
            "trust_pickled=True)) if you trust its config, or name the plug-in by import path"
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
