"""The baseline for bench_serving: a BentoML service that does nothing, configured like ours."""

from __future__ import annotations

import bentoml


@bentoml.service(
    name="Trivial",
    traffic={"timeout": 10, "max_concurrency": 256},
    workers=1,
    logging={"access": {"enabled": False}},
)
class Trivial:
    """Echo one number: the cost of BentoML's HTTP path alone."""

    @bentoml.api(route="/trivial")
    async def trivial(self, value: float = 0.0) -> dict[str, float]:
        return {"value": value}
