"""Training: one folder per model (`churn/`, `recommender/`, `offers/`) beside the shared MLflow
`tracking` and the champion/challenger `registry`. Imports `inference` only to evaluate what it
trains through the same loaders the service uses."""
