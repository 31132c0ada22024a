"""Experiment configs (TOML) and their runner: ``python -m experiments.run CONFIG``."""
