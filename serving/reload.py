"""Single-flight model reload with a deadline of its own (`POST`/`GET /admin/reload`, SIGHUP).

A reload loads a whole new model set on one dedicated thread while the old set keeps serving,
then swaps it in as one reference. `Reloader.start()` starts a load only when none is running:
a request that arrives while one runs *joins* it (same status, same `started_at`), so retries
never pile up parallel loads. The caller gets the status at once (the HTTP route answers 202)
and follows it with `status()` (`GET /admin/reload`).

A load still running after `timeout_s` is marked `failed` and its result, if it ever arrives,
is discarded: the old models keep serving. Python cannot stop a thread, so until that late load
ends `busy` stays true and `start()` refuses to begin another (the route answers 409) rather than
run two loads at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from inference.registry import redact_uri
from serving.schemas import ReloadStatus

log = logging.getLogger("paycycle.serving")

# apply(loaded) swaps the loaded set in and returns (versions now served, problem or None);
# a problem with nothing swapped in is raised as ReloadRefused instead.
Apply = Callable[[Any], tuple[dict[str, str | None], str | None]]


class ReloadRefused(Exception):
    """The loaded set is not fit to serve (e.g. no churn model); the old one stays."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _reason(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return redact_uri(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)[:500]


class Reloader:
    """One load at a time on its own thread, bounded by `timeout_s`; lives on one event loop."""

    def __init__(self, load: Callable[[], Any], apply: Apply, timeout_s: float) -> None:
        self._load = load
        self._apply = apply
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reload")
        self._future: Future | None = None  # the load thread's work (also a late one)
        self._task: asyncio.Task | None = None  # waits for it, up to the deadline
        self._status = ReloadStatus(state="idle", busy=False, timeout_s=timeout_s)

    def status(self) -> ReloadStatus:
        busy = self._future is not None and not self._future.done()
        return self._status.model_copy(update={"busy": busy})

    def start(self) -> tuple[bool, ReloadStatus]:
        """Start a load, or join the one running.

        Returns:
            (accepted, status): accepted is False only while a load that passed its deadline is
            still running; then nothing new starts.
        """
        if self._task is not None and not self._task.done():
            return True, self.status()  # join the running load
        if self._future is not None and not self._future.done():
            return False, self.status()  # a late load still holds the thread
        self._status = ReloadStatus(
            state="loading", busy=True, started_at=_now(), timeout_s=self.timeout_s
        )
        self._future = self._executor.submit(self._load)
        self._task = asyncio.get_running_loop().create_task(self._finish(self._future))
        return True, self.status()

    async def _finish(self, future: Future) -> None:
        update: dict[str, Any]
        try:
            loaded = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), self.timeout_s
            )
            versions, problem = self._apply(loaded)
            update = {
                "state": "done",
                "versions": versions,
                "error": problem and redact_uri(problem),
            }
        except TimeoutError:
            update = {
                "state": "failed",
                "error": (
                    f"the load took longer than serving.reload_timeout_s={self.timeout_s:g} s; "
                    "the old models keep serving and its late result will be discarded"
                ),
            }
        except Exception as exc:  # a failed load never takes the service down
            update = {"state": "failed", "error": _reason(exc)}
        update["finished_at"] = _now()
        self._status = self._status.model_copy(update=update)
        if self._status.state == "failed":
            log.error("reload failed, the old models keep serving: %s", self._status.error)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
