"""User plug-ins named by import path ("my_pkg.models:build") where a registry name goes.

A registry-backed key (model, dataset, partition) accepts either one of its registry's
names or "module:attribute"; the model key also accepts a path ending in ".keras". The
module is imported in whichever process builds the config (the server, every Ray worker,
every SuperNode), so the user's package must be importable there: installed in the
environment, or on PYTHONPATH (Ray workers inherit the driver's environment). Every
failure is one ConfigError naming the key and the form it expects.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any

from learning.errors import ConfigError
from learning.plugin_objects import display, is_pickled, unpack

# The form each plug-in key expects, quoted in every error about it.
FORMS = {
    "model": '"my_pkg.models:build", a function (input_shape, num_classes) -> keras.Model '
    'ending in a softmax, or "path/to/model.keras"',
    "dataset": '"my_pkg.data:load", a function () -> (x_train, y_train, x_test, y_test)',
    "partition": '"my_pkg.split:split", a function (labels, num_clients, rng) -> list of '
    "index arrays",
    "strategy": '"my_pkg.strategies:MyStrategy", a subclass of '
    "flwr.serverapp.strategy.FedAvg or Strategy (built with perennial's FedAvg arguments), "
    "or a function (config) -> Strategy",
}
# Positional arguments each plug-in function is called with (a strategy class: none, it
# gets keyword arguments; strategies/registry.py judges it).
ARITY = {"model": 2, "dataset": 0, "partition": 3, "strategy": 1}


def is_plugin(value: str) -> bool:
    """Whether a registry-backed value names a plug-in rather than a registry entry."""
    return ":" in value or value.endswith(".keras")


def is_keras_file(value: str) -> bool:
    """A model given as a saved Keras file rather than a builder function."""
    return value.endswith(".keras") and ":" not in value and not is_pickled(value)


def plugin_error(key: str, value: str, why: str) -> ConfigError:
    """The one-line error every plug-in problem becomes."""
    return ConfigError(f"{key} {display(value)!r}: {why}; expected {FORMS[key]}")


def resolve(key: str, value: str) -> Callable[..., Any]:
    """Import "module:attribute" (or load an object passed from the Python API) and check
    it can be called with the key's arguments."""
    if is_pickled(value):
        if key == "model":
            from learning.tf_import import import_tensorflow

            import_tensorflow()  # the object's globals may import Keras: quietly
        return _check_callable(key, value, unpack(key, value), display(value))
    module_name, _, attr = value.partition(":")
    if not module_name or not attr or ":" in attr:
        raise plugin_error(key, value, "not of the form module:attribute")
    if key == "model" and module_name not in sys.modules:
        from learning.tf_import import import_tensorflow

        import_tensorflow()  # a model module imports Keras: quietly, the way we do
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise plugin_error(
            key,
            value,
            f"cannot import module {module_name!r} ({exc}); install the package or add its "
            "folder to PYTHONPATH",
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise plugin_error(key, value, f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return _check_callable(key, value, obj, attr)


def _check_callable(key: str, value: str, obj: Any, attr: str) -> Callable[..., Any]:
    if not callable(obj):
        raise plugin_error(key, value, f"{attr!r} is not callable")
    if inspect.isclass(obj) and key == "strategy":
        return obj
    try:
        inspect.signature(obj).bind(*range(ARITY[key]), **settings_kwargs(obj, {}))
    except TypeError:
        raise plugin_error(
            key, value, f"{attr!r} cannot be called with {ARITY[key]} positional argument(s)"
        ) from None
    except ValueError:  # a builtin without a signature: judged when called
        pass
    return obj


def settings_kwargs(fn: Callable[..., Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """`{"settings": a copy of the [plugin] table}` for a plug-in (function or class) that
    declares a parameter `settings` taking a keyword, else nothing: a plug-in asks for
    its settings by naming them, and one that does not is called as it always was."""
    try:
        param = inspect.signature(fn).parameters.get("settings")
    except (TypeError, ValueError):  # a builtin without a signature
        return {}
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {"settings": dict(settings)} if param is not None and param.kind in keyword else {}


def reads_settings(key: str, value: str) -> bool:
    """Whether the plug-in `value` asks for the [plugin] table: only then do the settings
    belong in a cache key (a sweep over settings it ignores must not hold N copies)."""
    if not is_plugin(value) or is_keras_file(value):
        return False
    return bool(settings_kwargs(resolve(key, value), {}))


def call(key: str, value: str, *args: Any, settings: Mapping[str, Any] | None = None) -> Any:
    """Call the plug-in (with `settings=` if it asks: `settings_kwargs`); an exception
    inside it becomes the key's one-line error."""
    fn = resolve(key, value)
    try:
        return fn(*args, **settings_kwargs(fn, settings or {}))
    except ConfigError:
        raise
    except Exception as exc:  # the user's code failed: say where, in one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise plugin_error(key, value, f"raised {type(exc).__name__}: {first}") from None
