"""`serving.reload.Reloader` in-process: one load at a time, joins instead of piling up, its own
deadline, failures that leave the old set in place. The loads are real functions on the real
reload thread, held on an event so each step is deterministic. (The service-level version of
these faults, over HTTP against a slow registry, is `test_reload_slow_registry.py`.)"""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.reload import Reloader, ReloadRefused

pytestmark = pytest.mark.timeout(60)


class GatedLoad:
    """A load that blocks until `gate` is set and counts how many times it ran."""

    def __init__(self, result: object = "set-2") -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.result = result

    def __call__(self) -> object:
        self.calls += 1
        self.entered.set()
        self.gate.wait(30)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class Served:
    """What the service serves: `apply` swaps it, as the service's `_swap` does."""

    def __init__(self) -> None:
        self.current = "set-1"

    def apply(self, loaded: object) -> tuple[dict[str, str | None], str | None]:
        if loaded == "no-churn":
            raise ReloadRefused("no churn model loaded, kept the old models")
        self.current = str(loaded)
        return {"paycycle-churn": str(loaded)}, None


async def _until(predicate, step: float = 0.01) -> None:
    while not predicate():
        await asyncio.sleep(step)


def test_requests_during_a_load_join_it() -> None:
    async def scenario() -> None:
        load, served = GatedLoad(), Served()
        reloader = Reloader(load, served.apply, timeout_s=30)
        assert reloader.status().state == "idle"
        accepted, first = reloader.start()
        assert accepted and first.state == "loading" and first.busy
        await asyncio.to_thread(load.entered.wait, 10)
        for _ in range(5):  # retries while it loads: same load, same start time
            accepted, again = reloader.start()
            assert accepted and again.state == "loading"
            assert again.started_at == first.started_at
            assert served.current == "set-1"  # the old set serves throughout
        load.gate.set()
        await _until(lambda: reloader.status().state != "loading")
        done = reloader.status()
        assert done.state == "done" and not done.busy and done.finished_at
        assert done.versions == {"paycycle-churn": "set-2"} and done.error is None
        assert load.calls == 1 and served.current == "set-2"
        reloader.close()

    asyncio.run(scenario())


def test_a_load_past_its_deadline_fails_and_its_late_result_is_discarded() -> None:
    async def scenario() -> None:
        load, served = GatedLoad(result="late-set"), Served()
        reloader = Reloader(load, served.apply, timeout_s=0.2)
        accepted, _ = reloader.start()
        assert accepted
        await _until(lambda: reloader.status().state != "loading")
        failed = reloader.status()
        assert failed.state == "failed" and "reload_timeout_s=0.2" in failed.error
        assert failed.busy  # the thread still runs: no second load may start beside it
        accepted, refused = reloader.start()
        assert not accepted and refused.state == "failed" and load.calls == 1
        load.gate.set()
        await _until(lambda: not reloader.status().busy)
        assert served.current == "set-1"  # the late result never went live
        load.result = "set-3"
        accepted, again = reloader.start()
        assert accepted and again.state == "loading"
        await _until(lambda: reloader.status().state != "loading")
        assert reloader.status().state == "done" and served.current == "set-3"
        assert load.calls == 2
        reloader.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("result", "needle"),
    [
        (RuntimeError("registry at http://ops:s3cret-pass@mlflow:5000 is down"), "ops:***@"),
        ("no-churn", "ReloadRefused: no churn model loaded"),
    ],
)
def test_a_failed_load_keeps_the_old_set_and_says_why(result: object, needle: str) -> None:
    async def scenario() -> None:
        load, served = GatedLoad(result=result), Served()
        load.gate.set()
        reloader = Reloader(load, served.apply, timeout_s=30)
        reloader.start()
        await _until(lambda: reloader.status().state != "loading")
        status = reloader.status()
        assert status.state == "failed" and needle in status.error
        assert "s3cret" not in status.error
        assert served.current == "set-1"
        reloader.close()

    asyncio.run(scenario())
