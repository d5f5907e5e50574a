"""Whether a finished bench cell is the cell its grid describes now.

A bench started again skips the cells that have a `summary.json`. If the grid file
changed since (another partition, more rounds), those cells hold another experiment's
numbers, and the table would mix the two silently; such a cell is refused instead.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from learning.config import ExperimentConfig, load_toml, to_toml
from learning.errors import ConfigError
from learning.plugin_objects import is_pickled
from privacy.server_key import result_keys


def check_finished_cell(cell_dir: Path, values: dict[str, Any], label: str) -> None:
    """Raise a one-line ConfigError if the cell in `cell_dir` ran another config.

    Compared: the keys that decide results, as the cell's config.toml records them (a
    key the file lacks, from an older perennial, and plug-ins passed as Python objects
    are not compared: the file is read as text, nothing in it is loaded)."""
    try:
        ran = load_toml(cell_dir / "config.toml")
    except (ConfigError, OSError):
        raise ConfigError(
            f"finished bench cell {label!r} has no readable config.toml; delete "
            f"{str(cell_dir)!r} to run it again"
        ) from None
    wanted = tomllib.loads(to_toml(result_keys(ExperimentConfig.from_flat(values))))
    for key in sorted(wanted):
        want = wanted[key]
        got = ran.get(key, want)
        if got != want and not (is_pickled(got) or is_pickled(want)):
            raise ConfigError(
                f"finished bench cell {label!r} ran {key} = {got!r} but the grid now "
                f"gives {want!r}; use another --out, or delete {str(cell_dir)!r} to run "
                "it again"
            )
