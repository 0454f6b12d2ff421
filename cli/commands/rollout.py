"""`paycycle rollout start|status|abort`: a challenger's safe rollout (shadow, canary, guards).

`start` pins `paycycle-churn@challenger` in a new rollout and, unless `--no-drive`, runs the
`rollout` flow that moves it through `rollout.stages` until it is promoted, rolled back by the
service's live guards, or aborted. `status` shows the newest rollout; `abort` stops routing to
the challenger (the aliases stay where they are).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from paycycle import config

out = Console()
rollout_app = typer.Typer(
    help="Safe rollout of the challenger: shadow, canary by customer, automatic rollback.",
    no_args_is_help=True,
)


def _show(view: Any) -> None:
    out.print_json(json.dumps(view.as_dict(), default=str))


@rollout_app.command("start")
def start_command(
    drive: Annotated[
        bool, typer.Option("--drive/--no-drive", help="Drive the stages until the rollout ends.")
    ] = True,
    timeout_s: Annotated[
        float | None, typer.Option("--timeout-s", min=1, help="Stop driving after this long.")
    ] = None,
) -> None:
    """Start rolling out paycycle-churn@challenger (the service routes within rollout.poll_s)."""
    from training.rollout import start_rollout

    settings = config.load()
    view = start_rollout(settings)
    out.print(
        f"rollout {view.rollout_id}: challenger v{view.challenger_version} "
        f"vs champion v{view.champion_version}"
    )
    if not drive:
        return
    from flows.rollout import rollout_flow

    ended = rollout_flow(settings, rollout_id=view.rollout_id, timeout_s=timeout_s)
    out.print(f"rollout {view.rollout_id}: {ended['state']} ({ended['reason'] or 'running'})")
    if ended["state"] != "promoted":
        raise typer.Exit(1)


@rollout_app.command("status")
def status_command() -> None:
    """The newest rollout: state, stage, guard readings, why it ended."""
    from training.rollout import rollout_status

    _show(rollout_status(config.load()))


@rollout_app.command("abort")
def abort_command(
    reason: Annotated[str, typer.Option(help="Recorded as why it ended.")] = "aborted by operator",
) -> None:
    """Stop routing to the challenger now; the champion alias stays where it is."""
    from training.rollout import abort_rollout

    _show(abort_rollout(config.load(), reason))


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
