"""Aggregation strategies: Flower Strategy shells over pure NumPy math.

Importing the package hands the registry's strategy names down to the config validator
(learning/ may not import strategies/, so the names travel down as data).
"""

from learning.config import register_strategy_names
from strategies.registry import STRATEGIES

register_strategy_names(STRATEGIES)
