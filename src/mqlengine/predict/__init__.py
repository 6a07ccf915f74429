"""Predictive likelihood: models learned from outcomes, their metrics and baselines."""
