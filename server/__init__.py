"""The Flower ServerApp: strategy set-up, sampling, central evaluation, run records.

Importing the strategies package hands its registry's names to the config validator
(learning/config_checks.py) before `context.run_config` is validated.
"""

import strategies  # noqa: F401
