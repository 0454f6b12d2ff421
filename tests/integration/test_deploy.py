"""`paycycle deploy` registers the scheduled flows on a real local Prefect server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.deploy import SCHEDULES
from tests.conftest import run_python

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def prefect_server(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": "",
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("prefect server did not start within 90 s")
    try:
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_deploy_registers_schedules(prefect_server, tmp_path: Path) -> None:
    url, env = prefect_server
    env = {**env, "PREFECT_API_URL": url}
    done = run_python(["-m", "paycycle", "deploy"], ROOT, env, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]

    reader = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        "        ds = await c.read_deployments()\n"
        "        print(json.dumps({d.name: [s.schedule.cron for s in d.schedules] for d in ds}))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    registered = json.loads(out.stdout.strip().splitlines()[-1])
    assert registered == {s.name: [s.cron] for s in SCHEDULES}


def test_deploy_without_server_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "paycycle", "deploy"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "PREFECT_API_URL" in done.stderr
