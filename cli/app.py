"""The `paycycle` command line: one Typer app, one sub-app or command module per area.

Heavy libraries (TensorFlow, MLflow, Evidently, Great Expectations) are imported inside the
commands that need them, so `paycycle --help` answers at once, and after `run()` has sent their
chatter to reports/cli.log. Exit codes are in `paycycle.errors` and README "Exit codes".
"""

from __future__ import annotations

import os
import sys
from itertools import takewhile
from pathlib import Path
from typing import Annotated

import typer
from typer._click.exceptions import NoArgsIsHelpError
from typer.exceptions import TyperException

from cli.commands import data as data_commands
from cli.commands import monitor as monitor_commands
from cli.commands import notify as notify_commands
from cli.commands import ops as ops_commands
from cli.commands import pipeline as pipeline_commands
from cli.commands import recommend as recommend_commands
from cli.commands import retention as retention_commands
from cli.commands import rollout as rollout_commands
from cli.commands import score as score_commands
from cli.commands import serve as serve_commands
from cli.commands import store as store_commands
from cli.commands import train as train_commands
from paycycle import __version__, config
from paycycle.console import cli_log_path, route_library_output
from paycycle.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigError,
    PayCycleError,
)

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
rollout_commands.register(app)
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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", help="Show library logs and warnings here (else: reports/cli.log)."
        ),
    ] = False,
) -> None:
    """PayCycle: payment-cycle notices, churn prevention and recommendations."""
    ctx.obj = {"debug": debug, "verbose": verbose}


def run() -> None:
    """Console entry point: chatter to reports/cli.log, errors as one line and a distinct code."""
    argv = sys.argv[1:]
    flags = set(takewhile(lambda arg: arg.startswith("-"), argv))  # the root options
    if len(flags) < len(argv) and "--help" not in argv:  # a command will run
        route_library_output(_log_path(), verbose="--verbose" in flags)
    raise SystemExit(_invoke(debug="--debug" in flags))


def _log_path() -> Path:
    try:
        return cli_log_path(config.load().root)
    except ConfigError:  # the command reports it in one line; the log still needs a home
        return cli_log_path(Path(os.environ.get("PAYCYCLE_ROOT") or config.PROJECT_ROOT))


def _invoke(debug: bool) -> int:
    """Run the app; every failure becomes one line on stderr and its exit code."""
    try:
        code = app(standalone_mode=False)  # returns the code of `raise typer.Exit(code)`
        return code if isinstance(code, int) else EXIT_OK
    except PayCycleError as exc:
        if debug:
            raise
        _error(_first_line(str(exc)))
        return exc.exit_code
    except NoArgsIsHelpError as exc:  # `paycycle train`: typer has printed the help already
        return exc.exit_code
    except TyperException as exc:  # click's usage errors (typer vendors click)
        _error(_first_line(exc.format_message()))
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        _error(f"{exc.__class__.__name__}: {_first_line(str(exc))} (--debug shows the traceback)")
        return EXIT_FAILURE


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _first_line(text: str) -> str:
    """The first non-blank line: library messages can span many, the terminal gets one."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


if __name__ == "__main__":
    run()
