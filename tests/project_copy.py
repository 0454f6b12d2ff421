"""A throw-away copy of the project as its own git + DVC repo, for DVC and flow tests.

Only the pipeline definition and the code its stages hash are copied (no data, no DVC cache),
so tests never touch the real project's `.dvc/cache`, `dvc.lock` or remote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("paycycle", "features")
FILES = ("dvc.yaml", ".dvcignore", ".gitignore")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def make_project(dest: Path, data: dict[str, Any] | None = None) -> Path:
    """Copy the pipeline into `dest`, set `params.yaml` data keys from `data`, git-commit it.

    The DVC config is copied without its remote; `.dvc-remote/` inside `dest` is the default.
    """
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CODE_DIRS:
        shutil.copytree(PROJECT_ROOT / name, dest / name, ignore=skip)
    for name in FILES:
        shutil.copy(PROJECT_ROOT / name, dest / name)
    (dest / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(PROJECT_ROOT / ".dvc" / name, dest / ".dvc" / name)
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["data"].update(data or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project copy")
    return dest
