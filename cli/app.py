"""The `paycycle` command line: one Typer app, one sub-app or command module per area.

Heavy libraries (TensorFlow, MLflow, Evidently, Great Expectations) are imported inside the
commands that need them, so `paycycle --help` answers at once.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli.commands import data as data_commands
from cli.commands import monitor as monitor_commands
from cli.commands import notify as notify_commands
from cli.commands import ops as ops_commands
from cli.commands import pipeline as pipeline_commands
from cli.commands import recommend as recommend_commands
from cli.commands import retention as retention_commands
from cli.commands import score as score_commands
from cli.commands import serve as serve_commands
from cli.commands import store as store_commands
from cli.commands import train as train_commands
from paycycle import __version__
from paycycle.errors import PayCycleError

app = typer.Typer(
    name="paycycle",
    help="Proactive subscription manager and its MLOps platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_commands.register(app)
monitor_commands.register(app)
notify_commands.register(app)
ops_commands.register(app)
pipeline_commands.register(app)
recommend_commands.register(app)
retention_commands.register(app)
score_commands.register(app)
train_commands.register(app)
serve_commands.register(app)
store_commands.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paycycle {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """PayCycle: payment-cycle notices, churn prevention and recommendations."""
    ctx.obj = {"debug": debug}


def run() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    debug = "--debug" in sys.argv
    try:
        app(standalone_mode=False)
    except PayCycleError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if debug:
            raise
        typer.echo(
            f"error: {exc.__class__.__name__}: {exc} (re-run with --debug for details)", err=True
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
