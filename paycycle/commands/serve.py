"""`paycycle serve` (the API, for development) and `paycycle build` (a bento for deployment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Annotated

import typer
from rich.console import Console

from paycycle import config
from paycycle.commands.child import check_port_free, run_child
from paycycle.console import cli_log_path
from paycycle.errors import EXIT_FAILURE, ConfigError

SERVICE = "serving.service:PayCycle"


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (params: serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (params: serving.port).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the scoring API with the registry's champion models (needs PAYCYCLE_API_TOKEN)."""
    settings = config.load()
    if not settings.api_token:
        raise ConfigError("PAYCYCLE_API_TOKEN: not set; export a token before serving the API")
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


def build() -> None:
    """Build a bento (`bentoml build`) of the API from bentofile.yaml; models load by alias."""
    settings = config.load()
    root = settings.root
    if not (root / "bentofile.yaml").exists():
        raise ConfigError(f"{root / 'bentofile.yaml'}: missing")
    requirements = root / ".bentoml-requirements.txt"
    uv = shutil.which("uv")
    if uv is None:
        raise ConfigError("uv: not found on PATH (needed to export the locked requirements)")
    export = [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
    subprocess.run([*export, "-o", str(requirements)], cwd=root, check=True, capture_output=True)
    try:
        code = subprocess.call([sys.executable, "-m", "bentoml", "build", str(root)], cwd=root)
    finally:
        requirements.unlink(missing_ok=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Attach the serving commands to the main app."""
    app.command()(serve)
    app.command()(build)
