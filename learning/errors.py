"""One small error hierarchy; the CLI prints any of these as one line and exits 2."""


class PerennialError(Exception):
    """Base class: a problem the user can fix; its message says what and how."""


class ConfigError(PerennialError):
    """A config key, type, range or combination is wrong."""


class DataError(PerennialError):
    """A dataset is missing, unreadable or has the wrong shape."""


class AggregationError(PerennialError):
    """Client updates cannot be combined (shapes differ, nothing to aggregate)."""
