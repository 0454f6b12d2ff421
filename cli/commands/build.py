"""`paycycle build`: a bento of the API that runs from an empty directory.

The bento carries `serving/` and the layers it imports (`inference/`, `features/`, the core;
no training code, no CLI, `bentofile.yaml` says which) and, as its Python packages, exactly the
locked versions of the `serving` dependency group (`uv export --only-group serving`), so
`bentoml serve paycycle:latest` or `bentoml containerize paycycle:latest` need nothing from
this checkout. Models are not in the bento: the service loads them by alias from
`MLFLOW_TRACKING_URI` when it starts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import typer
import yaml

from paycycle import config
from paycycle.errors import EXIT_FAILURE, ConfigError, PayCycleError

BENTOFILE = "bentofile.yaml"
SERVING_GROUP = "serving"


class BuildError(PayCycleError):
    """`bentoml build` (or the requirements export before it) failed."""

    exit_code = EXIT_FAILURE


def uv_command() -> list[str]:
    """`uv` on PATH, else `python3 -m uv` (how `make install` bootstraps it)."""
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run(["python3", "-m", "uv", "--version"], capture_output=True)
    if probe.returncode == 0:
        return ["python3", "-m", "uv"]
    raise ConfigError("uv: not found (install it with `python3 -m pip install uv`)")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def serving_requirements(root: Path) -> list[str]:
    """The locked `serving` dependency group as pinned requirement lines."""
    cmd = [*uv_command(), "export", "--frozen", "--only-group", SERVING_GROUP, "--no-emit-project"]
    out = subprocess.run([*cmd, "--no-hashes", "-q"], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise BuildError(f"uv export: {_last_line(out.stderr)}")
    lines = [line.strip() for line in out.stdout.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def build_bento(root: Path) -> str:
    """Build the bento from `root/bentofile.yaml` with the locked requirements; returns its tag.

    Raises:
        ConfigError: no bentofile, or uv is missing.
        BuildError: the export or `bentoml build` failed (its last line says why).
    """
    bentofile = root / BENTOFILE
    if not bentofile.exists():
        raise ConfigError(f"{bentofile}: missing")
    spec = yaml.safe_load(bentofile.read_text())
    # BentoML refuses absolute and hidden requirement files: give it the pins as a list
    spec["python"] = {"lock_packages": False, "packages": serving_requirements(root)}
    with tempfile.TemporaryDirectory(prefix="paycycle-bento-") as tmp:
        generated = Path(tmp) / BENTOFILE
        generated.write_text(yaml.safe_dump(spec, sort_keys=False))
        cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(generated), "-o", "tag"]
        out = subprocess.run([*cmd, str(root)], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise BuildError(f"bentoml build: {_last_line(out.stderr or out.stdout)}")
    return _last_line(out.stdout).removeprefix("__tag__:")


def build() -> None:
    """Build a bento of the API (`bentoml build`); models load by alias when it starts."""
    tag = build_bento(config.load().root)
    typer.echo(f"built {tag}")
    typer.echo(
        f"serve:         bentoml serve {tag}  (with MLFLOW_TRACKING_URI, PAYCYCLE_API_TOKEN)"
    )
    typer.echo(f"containerize:  bentoml containerize {tag}")
