"""Retention offer policy: P(accept) and effect fitting, evaluation, export, registration."""
