"""The Flower ClientApp: local training on a client's private shard.

Importing the strategies package hands its registry's names to the config validator
(learning/config_checks.py) before a message's config is validated.
"""

import strategies  # noqa: F401
