"""The baseline for bench_serving: a BentoML service that does nothing, configured like ours
(same traffic settings, the same `serving.traffic` timeout fix, the same GC freeze at start)."""

from __future__ import annotations

import gc

import bentoml

from serving import traffic


@bentoml.service(
    name="Trivial",
    traffic={"timeout": 10, "max_concurrency": 256},
    workers=1,
    logging={"access": {"enabled": False}},
)
class Trivial:
    """Echo one number: the cost of BentoML's HTTP path alone."""

    def __init__(self) -> None:
        gc.collect()  # like PayCycle.__init__: what is loaded at start stays out of GC scans
        gc.freeze()

    @bentoml.api(route="/trivial")
    async def trivial(self, value: float = 0.0) -> dict[str, float]:
        return {"value": value}


traffic.install()  # the same timeout handling as serving.service
