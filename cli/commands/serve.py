"""`paycycle serve` (the API, for development); `paycycle build` is in `cli.commands.build`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from cli.commands.child import check_port_free, run_child
from paycycle import config
from paycycle.console import cli_log_path
from paycycle.errors import EXIT_FAILURE

SERVICE = "serving.service:PayCycle"


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (params: serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (params: serving.port).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the scoring API with the registry's champion models (needs PAYCYCLE_API_TOKEN)."""
    from serving.credentials import check_service_secrets

    settings = config.load()
    check_service_secrets(settings)  # a weak token or short link secret: one line, exit 2
    s = settings.params.serving
    host, port = host or s.host, port or s.port
    check_port_free(host, port)
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--working-dir", str(settings.root)]
    cmd += ["--host", host, "--port", str(port)]
    if reload:
        cmd.append("--reload")
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    Console().print(f"PayCycle API on http://{host}:{port} (Ctrl-C stops it)")
    code = run_child(cmd, env)
    if code:
        log = cli_log_path(settings.root)
        typer.echo(f"error: bentoml serve exited with code {code} (its output: {log})", err=True)
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Attach the serving commands to the main app."""
    app.command()(serve)
    from cli.commands.build import build

    app.command()(build)
