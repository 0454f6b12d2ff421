"""The challenger's side of the churn route during a rollout: shadow, canary, live guards.

`RolloutController` lives as long as the service (reloads of the champion keep it). Every
`rollout.poll_s` it reads the model's newest rollout from the store (`inference.rollout_state`):

- a running rollout whose challenger is not loaded yet: load that pinned version on its own
  thread (the champion keeps answering everyone meanwhile);
- while it routes: compute the guard readings over the last `rollout.window_s` and either write
  them for the driver, or, on a breach (`inference.rollout.breaches`), stop routing at once and
  record the rollback and why; the registry's aliases are never touched here;
- an ended rollout (aborted, rolled back by another worker, promoted) stops routing; a promoted
  one asks the service to reload its champion and keeps the challenger on 100% until then.

`answer(champion, customers, ids)` is what `serving.routing.ChurnRoute` calls per request. Stage
percent 0 is shadow: the champion answers, the challenger scores the same customers in batches
gathered off the response path (`ShadowBuffer`: what arrived in `SHADOW_FLUSH_S`, scored in
slices the challenger's batcher runs on the event loop, so shadow mode adds few model calls and
no thread fighting the loop for the GIL). A canary stage sends the customers whose stable hash
falls below the percent to the challenger; a challenger request that raises is answered by the
champion.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from inference.rollout import ENDED, PROMOTED, ROLLED_BACK, RUNNING, breaches, in_canary, measure
from paycycle.config import Settings

log = logging.getLogger("paycycle.serving")

SHADOW_FLUSH_S = 0.2  # shadow scores gather this long before the challenger scores them
SHADOW_MAX_ROWS = 4096  # ... or this many rows
SHADOW_MAX_PENDING = 20_000  # past this many waiting rows shadow drops (counted), never blocks
SCORES_KEPT = 5_000  # latest scores per side the shift guard compares


class LiveWindow:
    """The challenger's calls, latencies and scores, and the champion's live scores, recent
    first out; all appended on the event loop."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.calls: deque[tuple[float, bool]] = deque()
        self.latencies: deque[tuple[float, float]] = deque()
        self.scores: deque[float] = deque(maxlen=SCORES_KEPT)
        self.reference: deque[float] = deque(maxlen=SCORES_KEPT)

    def call(self, ok: bool) -> None:
        self.calls.append((time.monotonic(), ok))

    def latency(self, seconds: float) -> None:
        self.latencies.append((time.monotonic(), seconds))

    def trim(self) -> None:
        edge = time.monotonic() - self.window_s
        for series in (self.calls, self.latencies):
            while series and series[0][0] < edge:
                series.popleft()


class ShadowBuffer:
    """Customers the champion answered, waiting to be scored by the challenger in one call."""

    def __init__(self, score: Callable[[list, list, str], Any]) -> None:
        self._score = score
        self._customers: list = []
        self._ids: list = []
        self._scheduled = False
        self._champion = ""  # the version that answered them
        self.dropped = 0

    def add(self, customers: Sequence[Any], ids: Sequence[str], champion: str) -> None:
        if len(self._customers) >= SHADOW_MAX_PENDING:
            self.dropped += len(customers)
            return
        self._champion = champion
        self._customers.extend(customers)
        self._ids.extend(ids)
        loop = asyncio.get_running_loop()
        if len(self._customers) >= SHADOW_MAX_ROWS:
            loop.create_task(self.flush())
        elif not self._scheduled:
            self._scheduled = True
            loop.call_later(SHADOW_FLUSH_S, lambda: loop.create_task(self.flush()))

    async def flush(self) -> None:
        self._scheduled = False
        customers, ids = self._customers, self._ids
        if not customers:
            return
        self._customers, self._ids = [], []
        await self._score(customers, ids, self._champion)


class RolloutController:
    """One worker's view of the rollout, and the challenger it routes to."""

    def __init__(
        self,
        settings: Settings,
        load: Callable[[str], Any],
        requests: Any = None,
    ) -> None:
        from inference.registry import CHURN_MODEL

        self.settings = settings
        self.limits = settings.params.rollout
        self.model = CHURN_MODEL
        self._load = load  # version -> serving.models.LoadedModel (on the loader thread)
        self._requests = requests  # monitoring.requests.RequestLogger, or None
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="challenger")
        self._loading: tuple[str, Future] | None = None
        self.view: Any = None  # inference.rollout_state.RolloutView
        self.challenger: Any = None  # serving.models.LoadedModel
        self.routing = False
        self.window = LiveWindow(self.limits.window_s)
        self.shadow = ShadowBuffer(self._shadow_score)
        self.error: str | None = None
        self._task: asyncio.Task | None = None
        self._promoted: set[int] = set()
        self._breached: set[int] = set()  # rolled back here: never routed again, store or not
        self._window_of: int | None = None  # the rollout the live window measures
        self._on_promoted: Callable[[], Any] | None = None
        self._engine: Any = None

    # --- the request path ----------------------------------------------------------------

    @property
    def percent(self) -> float:
        return self.limits.stages[self.view.stage].percent if self.view is not None else 0.0

    async def answer(
        self, champion: Any, customers: Sequence[Any], ids: list[str]
    ) -> tuple[np.ndarray, list[str]] | None:
        """(probabilities, versions) for this request, or None: the champion alone answers."""
        challenger = self.challenger
        if not self.routing or challenger is None:
            return None
        if self.view.state == PROMOTED and champion.version == challenger.version:
            self.routing = False  # the reloaded champion is the challenger now
            return None
        percent = 100.0 if self.view.state == PROMOTED else self.percent
        if percent <= 0:  # shadow: nothing here but the champion's call and a list append
            probs = await champion.batcher.submit(customers, ids)
            self.window.reference.extend(probs.tolist())
            self.shadow.add(customers, ids, champion.version)
            return probs, [champion.version] * len(customers)
        mask = in_canary([c.customer_id for c in customers], percent)
        probs = np.empty(len(customers))
        versions = [champion.version] * len(customers)
        parts = [np.flatnonzero(~mask), np.flatnonzero(mask)]
        home, away = await asyncio.gather(
            self._champion_rows(champion, customers, ids, parts[0]),
            self._challenger_rows(champion, challenger, customers, ids, parts[1]),
        )
        probs[parts[0]] = home
        probs[parts[1]], served = away
        for i in parts[1]:
            versions[i] = served
        return probs, versions

    async def _champion_rows(self, champion, customers, ids, rows) -> np.ndarray:
        if len(rows) == 0:
            return np.empty(0)
        out = await champion.batcher.submit([customers[i] for i in rows], [ids[i] for i in rows])
        self.window.reference.extend(out.tolist())
        _metrics().answers.labels(champion.version, "champion").inc(len(rows))
        return out

    async def _challenger_rows(self, champion, challenger, customers, ids, rows):
        if len(rows) == 0:
            return np.empty(0), challenger.version
        mine, my_ids = [customers[i] for i in rows], [ids[i] for i in rows]
        try:
            out = await challenger.batcher.submit(mine, my_ids)
        except Exception as exc:  # the client never sees the challenger fail
            self._failed(challenger.version, exc)
            out = await champion.batcher.submit(mine, my_ids)
            _metrics().answers.labels(champion.version, "fallback").inc(len(rows))
            return out, champion.version
        self.window.call(ok=True)
        self.window.scores.extend(out.tolist())
        _metrics().answers.labels(challenger.version, "canary").inc(len(rows))
        return out, challenger.version

    async def _shadow_score(self, customers: list, ids: list, champion: str) -> None:
        challenger = self.challenger
        if challenger is None or not self.routing:
            return
        _metrics().answers.labels(champion, "champion").inc(len(customers))
        # In slices the batcher scores on the event loop (`MicroBatcher.inline_rows`), serving
        # requests between them: one big call on the scoring thread fought the loop for the GIL
        # (a CPU-bound thread holds it up to the 5 ms switch interval each time the loop gives
        # it up for a socket call), which cost a third of the champion's throughput.
        size = challenger.batcher.inline_rows or len(customers)
        for start in range(0, len(customers), size):
            part = slice(start, start + size)
            try:
                out = await challenger.batcher.submit(customers[part], ids[part])
            except Exception as exc:
                self._failed(challenger.version, exc)
                return
            self.window.call(ok=True)
            self.window.scores.extend(out.tolist())
            _metrics().answers.labels(challenger.version, "shadow").inc(len(out))

    def _failed(self, version: str, exc: Exception) -> None:
        self.window.call(ok=False)
        _metrics().errors.labels(version).inc()
        self.error = f"{exc.__class__.__name__}: {str(exc)[:200]}"

    def _log(self, version: str, customers, columns, probs, ids) -> None:
        """The challenger batcher's observer: its scores in the request log under its version
        and the champion's prediction ids, as `shadow` while the stage is shadow."""
        from monitoring.requests import SERVED, SHADOW

        role = SHADOW if self.percent <= 0 and self.view.state != PROMOTED else SERVED
        self._requests.log_scored(customers, probs, version, columns, ids, role=role)

    def timed(self, score: Callable[[Any], np.ndarray], version: str) -> Callable:
        """Wrap the challenger's batch scorer so each model call's latency feeds the guard."""
        histogram = _metrics().call_seconds.labels(version)

        def call(columns: Any) -> np.ndarray:
            start = time.perf_counter()
            try:
                return score(columns)
            finally:
                took = time.perf_counter() - start
                histogram.observe(took)
                self.window.latency(took)

        return call

    # --- the poll loop ---------------------------------------------------------------------

    def start(self, on_promoted: Callable[[], Any]) -> None:
        """Start polling the store (on the running event loop)."""
        self._on_promoted = on_promoted
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as exc:  # a store hiccup never stops the service or the loop
                log.warning("rollout poll failed: %s: %s", exc.__class__.__name__, exc)
            await asyncio.sleep(self.limits.poll_s)

    async def poll(self) -> None:
        """Read the rollout, load the challenger it names, judge the guards, report."""
        from inference import rollout_state

        view = await asyncio.to_thread(self._latest)
        self.view = view
        if view is None or (view.state in ENDED and view.state != PROMOTED):
            self.routing = False
            return
        if view.state == PROMOTED:
            if view.rollout_id not in self._promoted and self._on_promoted is not None:
                self._promoted.add(view.rollout_id)
                self._on_promoted()
            return
        if view.rollout_id in self._breached or not self._ready_for(view.challenger_version):
            return
        if self._window_of != view.rollout_id:  # every rollout is judged on its own traffic
            self._window_of = view.rollout_id
            self.window = LiveWindow(self.limits.window_s)
        self.routing = True
        self.window.trim()
        readings = self.readings()
        found = breaches(readings, self.limits)
        engine = self._store()
        if found:
            self.routing = False  # at once, before the store hears of it
            self._breached.add(view.rollout_id)
            reason = "; ".join(found)
            log.error("rollout %s rolled back: %s", view.rollout_id, reason)
            stage = self.limits.stages[view.stage].name
            await asyncio.to_thread(
                rollout_state.end,
                engine,
                view.rollout_id,
                ROLLED_BACK,
                f"{stage}: {reason}",
                readings.as_dict(),
            )
            return
        await asyncio.to_thread(rollout_state.report, engine, view.rollout_id, readings.as_dict())

    def readings(self):
        """The guard readings over the live window (`inference.rollout.Readings`)."""
        calls = list(self.window.calls)
        return measure(
            calls=len(calls),
            errors=sum(not ok for _, ok in calls),
            latencies_s=np.array([s for _, s in list(self.window.latencies)]),
            scores=np.array(self.window.scores),
            reference=np.array(self.window.reference),
            limits=self.limits,
        )

    def _ready_for(self, version: str) -> bool:
        """True when `version` is loaded; else start (or keep waiting for) its load."""
        if self.challenger is not None and self.challenger.version == version:
            return True
        if self._loading is None or self._loading[0] != version:
            self.routing = False
            self.challenger = None
            self._loading = (version, self._loader.submit(self._load, version))
            return False
        future = self._loading[1]
        if not future.done():
            return False
        try:
            loaded = future.result()
        except Exception as exc:
            self.error = f"challenger v{version} did not load: {exc.__class__.__name__}: {exc}"
            log.error("%s", self.error)
            self._loading = None
            return False
        loaded.batcher._score = self.timed(loaded.batcher._score, version)
        if self._requests is not None:
            loaded.batcher.observer = functools.partial(self._log, version)
        self.challenger = loaded
        log.info("challenger %s v%s loaded for rollout", self.model, version)
        return True

    def _store(self) -> Any:
        if self._engine is None:
            from paycycle.store import make_engine

            self._engine = make_engine(self.settings.db_url)
        return self._engine

    def _latest(self) -> Any:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from inference import rollout_state

        try:
            return rollout_state.latest(self._store(), self.model)
        except (OperationalError, ProgrammingError) as exc:  # store not migrated to 0007 yet
            self.error = f"rollouts unreadable: {str(exc).splitlines()[0][:200]}"
            return None

    def status(self) -> dict[str, Any] | None:
        """The rollout as this worker sees it, for `/readyz`."""
        view = self.view
        if view is None:
            return {"state": "none", "error": self.error} if self.error else None
        stage = self.limits.stages[view.stage]
        return {
            "rollout_id": view.rollout_id,
            "state": view.state,
            "stage": stage.name,
            "percent": stage.percent,
            "champion_version": view.champion_version,
            "challenger_version": view.challenger_version,
            "challenger_loaded": self.challenger is not None,
            "routing": self.routing,
            "reason": view.reason,
            "readings": self.readings().as_dict() if view.state == RUNNING else view.readings,
            "shadow_dropped": self.shadow.dropped,
            "error": self.error,
        }

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._loader.shutdown(wait=False, cancel_futures=True)


def _metrics() -> Any:
    from serving.metrics import rollout_metrics

    return rollout_metrics()


def load_challenger(settings: Settings, executor: Executor) -> Callable[[str], Any]:
    """`version -> LoadedModel`: the churn model's pinned version with its own batcher."""
    from inference.registry import CHALLENGER
    from serving.models import load_one

    return lambda version: load_one("churn", CHALLENGER, settings, executor, version)
