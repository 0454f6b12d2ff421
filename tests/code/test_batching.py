"""MicroBatcher: small batches of a cheap scorer run on the event loop, big ones on the thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.batching import MicroBatcher


def _batcher(pool: ThreadPoolExecutor, seen: list[tuple[int, int]], fail: bool = False):
    def score(cols: dict) -> np.ndarray:
        seen.append((threading.get_ident(), len(cols["x"])))
        if fail:
            raise ValueError("model exploded")
        return np.asarray(cols["x"], float) * 2

    to_columns = lambda items: {"x": np.asarray(items, float)}  # noqa: E731
    return MicroBatcher(score, pool, to_columns=to_columns, inline_rows=8)


def test_small_batches_score_on_the_loop_and_big_ones_on_the_thread() -> None:
    seen: list[tuple[int, int]] = []

    async def run() -> tuple[list[np.ndarray], int]:
        batcher = _batcher(pool, seen)
        small = await asyncio.gather(*(batcher.submit([i, i + 1]) for i in range(3)))
        big = await batcher.submit(list(range(20)))
        return [*small, big], threading.get_ident()

    with ThreadPoolExecutor(1) as pool:
        outs, loop_thread = asyncio.run(run())
    assert [o.tolist() for o in outs[:3]] == [[0, 2], [2, 4], [4, 6]]
    assert outs[3].tolist() == [2 * i for i in range(20)]
    # the three concurrent requests were one call of 6 rows, on the loop's own thread
    assert seen[0] == (loop_thread, 6)
    assert seen[1][1] == 20 and seen[1][0] != loop_thread


def test_an_inline_failure_reaches_every_waiter_and_the_batcher_goes_on() -> None:
    seen: list[tuple[int, int]] = []

    async def run() -> list[object]:
        batcher = _batcher(pool, seen, fail=True)
        first = await asyncio.gather(
            batcher.submit([1]), batcher.submit([2]), return_exceptions=True
        )
        batcher._score = lambda cols: np.asarray(cols["x"], float)  # the model recovers
        return [*first, await batcher.submit([3])]

    with ThreadPoolExecutor(1) as pool:
        got = asyncio.run(run())
    assert [str(g) for g in got[:2]] == ["model exploded"] * 2
    assert got[2].tolist() == [3.0]


@pytest.mark.parametrize("rows", [1, 8])
def test_inline_rows_zero_always_uses_the_thread(rows: int) -> None:
    seen: list[int] = []

    async def run() -> int:
        batcher = MicroBatcher(
            lambda c: seen.append(threading.get_ident()) or np.zeros(rows),
            pool,
            to_columns=lambda items: items,
        )
        await batcher.submit(list(range(rows)))
        return threading.get_ident()

    with ThreadPoolExecutor(1) as pool:
        loop_thread = asyncio.run(run())
    assert seen and seen[0] != loop_thread
