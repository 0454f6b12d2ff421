"""Run a BentoML service as a background process on 127.0.0.1 (the demo, tests, benchmarks).

`serve` starts `bentoml serve TARGET` in its own process group and stops the whole group when the
block ends (SIGTERM, then SIGKILL after 20 s), so no worker outlives its caller; `wait_ready` polls
`/readyz` until the models are loaded, failing fast with the log tail if the process exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(
    target: str, port: int, env: dict[str, str], log_path: Path, server: str = "bentoml"
) -> Iterator[subprocess.Popen]:
    """Run `bentoml serve target` (or, with `server="uvicorn"`, the ASGI app `target` on
    uvicorn) on 127.0.0.1:port until the block ends."""
    if server == "uvicorn":
        cmd = [sys.executable, "-m", "uvicorn", target, "--app-dir", str(ROOT)]
        cmd += ["--log-level", "warning"]
    else:
        cmd = [sys.executable, "-m", "bentoml", "serve", target, "--working-dir", str(ROOT)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)


def wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 180) -> None:
    """Block until `url/readyz` answers 200; raise with the log's tail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited; log: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s; log: {log_path.read_text()[-2000:]}")
