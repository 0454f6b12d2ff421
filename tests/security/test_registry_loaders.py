"""A registry cannot make us import code: loaders are chosen by model name, never by a tag.

The old layout read a `"module:function"` loader from a mutable model-version tag; anyone who
could write a tag could make the service import and run any module. The attack: register the
champion's artifact again with a hostile `paycycle.loader` tag, then load it the way the service
does. The safe outcome: the churn loader from the allow-list runs, the hostile module is never
imported, and an unknown model name is refused with one line naming it.
"""

from __future__ import annotations

import sys

import pytest

from inference import registry as models
from paycycle import config
from paycycle.errors import ConfigError

pytestmark = [pytest.mark.slow]

HOSTILE = "tests.security.hostile_loader:boom"


def test_hostile_loader_tag_is_ignored(champion_store, tmp_path) -> None:
    from training import tracking

    settings = config.load(mlflow_tracking_uri=champion_store[0])
    champion = models.alias_version(settings, models.CHURN_MODEL, models.CHAMPION)
    source = models.client(settings).get_model_version(models.CHURN_MODEL, champion).source
    version = tracking.register_version(
        settings, source, models.CHURN_MODEL, {"paycycle.loader": HOSTILE}
    )

    scorer, loaded = models.load_scorer(models.CHURN_MODEL, settings=settings, version=version)

    assert loaded == version
    assert "tests.security.hostile_loader" not in sys.modules
    probs = scorer({"subscription_duration": [10.0, 3.0], "failed_payments": [0.0, 3.0]})
    assert probs.shape == (2,) and probs[1] > probs[0]


def test_unknown_model_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"model: 'os' is not a PayCycle model"):
        models.load_scorer("os", settings=config.load())
