"""Next-best plan/add-on recommender: labels, training, evaluation vs the oracle, registration."""
