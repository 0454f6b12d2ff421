"""Inference: the one place where a registered model becomes something that scores.

`registry` owns the model names and aliases and loads a version with the loader its *name*
selects; `churn`, `recommender`, `offers` + `offer_artifact` are the scorers; `compiled` is the
service's fast path; `batch`, `score_io` and `monthly_offers` score partitions and months;
`smoke` holds the seed customers and the promotion smoke test. Serving, batch flows, the CLI
and training's evaluation all score through here. Nothing heavy happens at import.
"""
