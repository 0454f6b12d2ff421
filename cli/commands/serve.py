"""`paycycle serve` (the API, for development); `paycycle build` is in `cli.commands.build`."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from paycycle import config
from paycycle.errors import ConfigError

SERVICE = "serving.service:PayCycle"


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (params: serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (params: serving.port).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the scoring API with the registry's champion models (needs PAYCYCLE_API_TOKEN)."""
    settings = config.load()
    if not settings.api_token:
        raise ConfigError("PAYCYCLE_API_TOKEN: set a token before serving the API")
    s = settings.params.serving
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--working-dir", str(settings.root)]
    cmd += ["--host", host or s.host, "--port", str(port or s.port)]
    if reload:
        cmd.append("--reload")
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    raise typer.Exit(subprocess.call(cmd, env=env))


def register(app: typer.Typer) -> None:
    """Attach the serving commands to the main app."""
    app.command()(serve)
    from cli.commands.build import build

    app.command()(build)
