"""Experiments: configs, the simulation runtime, benchmarks, reports and the CLI.

Importing the strategies package hands its registry's names to the config validator
(learning/config_checks.py), so every command checks `strategy` like any other name.
"""

import strategies  # noqa: F401
