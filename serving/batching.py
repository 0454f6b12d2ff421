"""Request coalescing: many concurrent requests, one compiled model call.

A compiled TF call has a fixed cost (~0.3–1.5 ms here) that barely grows with rows, so paying it
per request caps throughput. `MicroBatcher` queues the requests that arrive while the model is
busy and scores them together in one call, on a worker thread (or, for a scorer of tens of
microseconds, on the event loop itself: `inline_rows`): an idle service answers a single
request at once (no waiting window), a busy one batches as deep as its load. Columns are built
once per batch with NumPy; no pandas on the request path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

from features.columns import customers_to_columns

Pending = tuple[Sequence[Any], "asyncio.Future[np.ndarray]", Sequence[str] | None]
# (items, input columns, output, prediction ids) after each model call, where it was scored
Observer = Callable[[Sequence[Any], Any, np.ndarray, list[str | None]], None]


class MicroBatcher:
    """Coalesce concurrent `score` calls on one model into single batched calls.

    Args:
        score: batch scorer, columns -> one number (or row) per customer.
        executor: where the model runs, so the event loop keeps accepting requests meanwhile.
        max_rows: soft cap on customers per model call.
        max_wait_s: longest a batch waits for requests still arriving.
        max_items: stop gathering once this many requests are queued.
        to_columns: request items -> the scorer's input, once per batch (default: the churn
            feature columns).
        inline_rows: batches of at most this many rows are scored on the event loop itself, not
            on `executor`: for a scorer that costs tens of microseconds (a NumPy forward pass),
            the hop to a thread and back (a future, a wake-up of the loop, the GIL changing
            hands twice) costs more than the call. 0: always on `executor`.

    `observer`, when set, is called where the batch was scored (the scoring thread, or the event
    loop for an inline batch) after each model call with the
    batch's items, its input columns, its output and the items' prediction ids (None where a
    `submit` gave none): the service's request log takes the columns already built for the
    model, so logging costs a request nothing.
    """

    def __init__(
        self,
        score: Callable[[Any], np.ndarray],
        executor: Executor,
        max_rows: int = 4096,
        max_wait_s: float = 0.002,
        max_items: int = 256,
        to_columns: Callable[[Sequence[Any]], Any] = customers_to_columns,
        inline_rows: int = 0,
    ) -> None:
        self._score = score
        self.inline_rows = inline_rows
        self._executor = executor
        self._to_columns = to_columns
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._max_items = max_items
        self._pending: deque[Pending] = deque()
        self._running = False
        self.observer: Observer | None = None
        self.calls = 0
        self.requests = 0
        self.rows = 0

    async def submit(
        self, customers: Sequence[Any], ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Score these customers together with whatever else is waiting.

        `ids` (one per customer) are handed to the observer with the batch: prediction ids.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((customers, future, ids))
        if not self._running:
            self._running = True
            loop.create_task(self._drain())
        return await future

    def _take(self) -> tuple[list[Pending], int]:
        taken, rows = [], 0
        while self._pending and (not taken or rows + len(self._pending[0][0]) <= self._max_rows):
            item = self._pending.popleft()
            taken.append(item)
            rows += len(item[0])
        return taken, rows

    def _run(self, batch: list[Pending]) -> np.ndarray:
        customers = batch[0][0] if len(batch) == 1 else [c for part, *_ in batch for c in part]
        columns = self._to_columns(customers)
        out = np.asarray(self._score(columns))
        if self.observer is not None:
            ids = [i for part, _, got in batch for i in (got or [None] * len(part))]
            self.observer(customers, columns, out, ids)
        return out

    async def _gather(self) -> None:
        """Let requests already inside the server reach the queue before the next call.

        Yield to the event loop while the queue keeps growing (bounded by `max_wait_s`): a lone
        request goes at once, a burst is scored as one batch instead of trickling through.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait_s
        seen = -1
        while len(self._pending) != seen and len(self._pending) < self._max_items:
            seen = len(self._pending)
            await asyncio.sleep(0)
            if loop.time() > deadline:
                break

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await self._gather()
                batch, rows = self._take()
                try:
                    if rows <= self.inline_rows:
                        out = self._run(batch)
                    else:
                        out = await loop.run_in_executor(self._executor, self._run, batch)
                except Exception as exc:  # every waiter gets the error, the loop keeps going
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.calls += 1
                self.requests += len(batch)
                self.rows += len(out)
                start = 0
                for part, future, _ in batch:
                    end = start + len(part)
                    if not future.done():
                        future.set_result(out[start:end])
                    start = end
        finally:
            self._running = False
