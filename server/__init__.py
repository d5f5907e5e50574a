"""The Flower ServerApp: strategy set-up, sampling, central evaluation, run records."""
