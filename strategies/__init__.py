"""Aggregation strategies: Flower Strategy shells over pure NumPy math."""
