"""A registry written by the old layout (history in `promotion.NNNNN` model tags) keeps its
history after the upgrade: `history` merges it with the run log, and `rollback` walks both."""

from __future__ import annotations

import json
from pathlib import Path

from paycycle import config

NAME = "paycycle-churn"


def _legacy_entry(action: str, version: str, previous: str | None, when: str) -> str:
    # exactly the JSON the old `_record` wrote (no `baseline_metrics` field)
    return json.dumps(
        {
            "model": NAME,
            "action": action,
            "version": version,
            "previous": previous,
            "reason": f"old layout: {action} v{version}",
            "metrics": {"auc": 0.8},
            "champion_metrics": {},
            "who": "old",
            "when": when,
        },
        separators=(",", ":"),
    )


def test_legacy_tag_history_is_merged_and_rollback_walks_it(tmp_path: Path) -> None:
    from inference.registry import CHAMPION, alias_version, client, version_tags
    from training import registry
    from training.registry import PROMOTED, Decision, history, record_decision, rollback

    settings = config.load(root=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    c = client(settings)
    c.create_registered_model(NAME)
    for _ in range(3):
        c.create_model_version(NAME, source=str(tmp_path / "model"))
    # the old layout: v1 then v2 promoted, recorded as registered-model tags; v2 is champion
    c.set_registered_model_tag(NAME, "promotion.00001", _legacy_entry(PROMOTED, "1", None, "t1"))
    c.set_registered_model_tag(NAME, "promotion.00002", _legacy_entry(PROMOTED, "2", "1", "t2"))
    c.set_registered_model_alias(NAME, CHAMPION, "2")

    # the new layout promotes v3 (alias move + a decision run)
    c.set_registered_model_alias(NAME, CHAMPION, "3")
    record_decision(
        settings,
        Decision(NAME, PROMOTED, "3", "2", "new layout", {"auc": 0.9}, who="new", when="t3"),
    )

    events = history(NAME, settings)
    assert [(e.action, e.version, e.who) for e in events] == [
        ("promoted", "1", "old"),
        ("promoted", "2", "old"),
        ("promoted", "3", "new"),
    ]
    assert events[0].baseline_metrics == {} and events[2].metrics == {"auc": 0.9}
    assert version_tags(settings, NAME, "3")["promotion.decision"] == "promoted"

    # rollback twice: first to v2 (new → old record), then to v1 (entirely from the old tags)
    assert rollback(NAME, settings).version == "2"
    assert alias_version(settings, NAME, CHAMPION) == "2"
    assert rollback(NAME, settings).version == "1"
    assert alias_version(settings, NAME, CHAMPION) == "1"
    assert [e.action for e in history(NAME, settings)] == [
        "promoted",
        "promoted",
        "promoted",
        "rollback",
        "rollback",
    ]
    # the old tags are read, never rewritten: no new `promotion.NNNNN` tag appears
    tags = c.get_registered_model(NAME).tags
    assert sorted(k for k in tags if k.startswith(registry.HISTORY_PREFIX)) == [
        "promotion.00001",
        "promotion.00002",
    ]
