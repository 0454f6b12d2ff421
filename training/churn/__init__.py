"""Churn model: training, tuning, evaluation vs the oracle and a baseline, registration."""
