"""A real `mlflow server` process on 127.0.0.1 for integration tests.

`start` returns at once so the caller can do other work while the server imports and migrates
its backend (~15-40 s on a busy 2-core box); `wait_ready` then polls `/health` with a bound.
The server runs in its own process group, and `stop` ends that whole group (uvicorn is a child
of the `mlflow server` CLI process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
START_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    """One `mlflow server` child process and where it keeps its state."""

    proc: subprocess.Popen
    url: str
    backend_uri: str
    artifacts_dir: Path
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """Block until `GET /health` answers 200; returns the tracking URL.

        Raises:
            RuntimeError: the process exited, or `timeout` seconds passed, with the log tail.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL whatever of it is left after a while."""
        pgid = self.proc.pid
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # the leader still holds the group id: safe to kill
                _signal_group(pgid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        # a uvicorn child that outlived the CLI keeps the group id in use, so it is still ours
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_members(pgid):
            _signal_group(pgid, signal.SIGKILL)


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (Linux `/proc`)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, sig)


def start(
    backend_uri: str,
    artifacts_dir: Path,
    log_path: Path,
    app_name: str | None = None,
    env: dict[str, str] | None = None,
) -> MlflowServer:
    """Start `mlflow server` with `backend_uri` (tracking + registry) and proxied artifacts.

    Args:
        backend_uri: SQLAlchemy URL of the backend store, e.g. a fresh PostgreSQL database.
        artifacts_dir: `--artifacts-destination`; clients upload through the server.
        log_path: the server's stdout and stderr.
        app_name: `--app-name`, e.g. `basic-auth` (MLflow's auth app).
        env: extra environment for the server (e.g. `MLFLOW_AUTH_CONFIG_PATH`).

    Returns:
        The running (not yet necessarily healthy) server; call `wait_ready` before use.
    """
    port = free_port()
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # the job runner and its huey consumer double start-up time and are not used here
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **(env or {}),
    }
    app = ["--app-name", app_name] if app_name else []
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", backend_uri]
            + ["--artifacts-destination", str(artifacts_dir)]
            + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            + app,
            cwd=artifacts_dir.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `stop` ends uvicorn too
        )
    return MlflowServer(proc, f"http://127.0.0.1:{port}", backend_uri, artifacts_dir, log_path)
