"""Experiments: configs, the simulation runtime, benchmarks, reports and the CLI."""
