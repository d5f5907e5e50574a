"""Shared bottom layer: datasets, partitioning, config, Keras models and training.

perennial is a privacy tool: Flower's telemetry and Ray's usage statistics are off
unless the user turns them on explicitly (any entry point imports this package).
"""

import os as _os

_os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
_os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
