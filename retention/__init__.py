"""Keeping customers: decline-aware dunning (`dunning`) and its evaluation on the simulator's
recovery truth (`dunning_eval`), cancel-page offers and saves (`saves`), and offer uplift
measured against the holdout (`uplift`)."""
