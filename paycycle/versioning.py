"""Data versioning with DVC: the one module that talks to DVC.

The pipeline stages and their outputs are declared in `dvc.yaml`; `dvc.lock` records the md5 of
each output, and that md5 is the data version every model run is tagged with. The default
remote is `.dvc-remote/` inside the project (`.dvc/config`); `PAYCYCLE_DVC_REMOTE` (a path or
an `s3://` URL) replaces it for `push`/`pull` through a local, uncommitted remote entry
(`.dvc/config.local`).

DVC runs as a subprocess (`python -m dvc`) so its locks, logging and exit codes stay its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from paycycle.config import Settings
from paycycle.errors import DataError

ENV_REMOTE = "env"  # name of the remote made from PAYCYCLE_DVC_REMOTE
LOCK_FILE = "dvc.lock"


def run_dvc(args: list[str], root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dvc <args>` in `root` with the current interpreter's DVC.

    Raises:
        DataError: DVC exited non-zero (its last error line is in the message).
    """
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        first = next((i for i, ln in enumerate(lines) if ln.startswith("ERROR")), 0)
        detail = " ".join(lines[first : first + 4])[:400]
        raise DataError(f"dvc {' '.join(args)} failed (exit {proc.returncode}): {detail}")
    return proc


def _relative(path: Path | str, root: Path) -> str:
    p = Path(path)
    p = p.resolve().relative_to(root.resolve()) if p.is_absolute() else p
    return p.as_posix().rstrip("/")


def data_hash(path: Path | str, root: Path) -> str:
    """The md5 DVC recorded for a tracked output (from `dvc.lock`, or `<path>.dvc`).

    Args:
        path: the output, e.g. `data/raw` (absolute or relative to `root`).
        root: the DVC project.

    Returns:
        The md5 (directories end in `.dir`, as DVC writes them).

    Raises:
        DataError: the path is not a recorded output.
    """
    rel = _relative(path, root)
    lock = root / LOCK_FILE
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                if out.get("path", "").rstrip("/") == rel and "md5" in out:
                    return str(out["md5"])
    single = root / f"{rel}.dvc"
    if single.exists():
        outs = (yaml.safe_load(single.read_text()) or {}).get("outs", [])
        if outs and "md5" in outs[0]:
            return str(outs[0]["md5"])
    raise DataError(f"{rel}: not recorded in {LOCK_FILE} or {rel}.dvc (run `dvc repro` first)")


def content_hash(path: Path | str, root: Path) -> str:
    """The md5 DVC would record for `path` as it is now, without touching `dvc.lock` or the cache.

    Used for data not produced by `params.yaml` (a run with overrides, data from elsewhere),
    which must not be recorded as the pipeline's output; equal content gives the value
    `data_hash` returns after a `dvc commit`.
    """
    import tempfile

    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db.local import LocalHashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    target = Path(path) if Path(path).is_absolute() else root / path
    if not target.exists():
        raise DataError(f"{target}: does not exist, nothing to hash")
    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory() as scratch:
        _, _, obj = build(LocalHashFileDB(fs, scratch), str(target), fs, "md5", dry_run=True)
    return str(obj.hash_info.value)


def commit(stages: list[str], root: Path) -> None:
    """Record the current outputs of `stages` in `dvc.lock` and the cache (`dvc commit -f`)."""
    run_dvc(["commit", "--force", "--quiet", *stages], root)


def _remote(settings: Settings) -> list[str]:
    """`-r env` after registering `PAYCYCLE_DVC_REMOTE` locally; [] for the default remote."""
    if not settings.dvc_remote:
        return []
    run_dvc(["remote", "add", "--local", "--force", ENV_REMOTE, settings.dvc_remote], settings.root)
    return ["--remote", ENV_REMOTE]


def push(settings: Settings, targets: list[str] | None = None) -> str:
    """Upload cached outputs (all, or `targets`) to the remote; returns DVC's summary line."""
    proc = run_dvc(["push", *_remote(settings), *(targets or [])], settings.root)
    return (proc.stdout.strip().splitlines() or [""])[-1]


def recorded_stages(root: Path) -> list[str]:
    """Stages with outputs recorded in dvc.lock (stages never run have nothing to pull)."""
    lock = root / LOCK_FILE
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.exists() else {}
    return list(stages)


def pull(settings: Settings, targets: list[str] | None = None) -> str:
    """Download and check out outputs (`targets`, default every stage in dvc.lock)."""
    targets = targets or recorded_stages(settings.root)
    if not targets:
        raise DataError(f"{settings.root / LOCK_FILE}: no recorded outputs to pull")
    proc = run_dvc(["pull", *_remote(settings), *targets], settings.root)
    return (proc.stdout.strip().splitlines() or [""])[-1]
