"""Config: params.yaml + env into one frozen object; bad values give one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from paycycle import config
from paycycle.errors import EXIT_USAGE, ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYCYCLE_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = config.load(write(tmp_path, "data:\n  customers: 50\n"), root=tmp_path)
    assert s.params.data.customers == 50
    assert s.params.data.months == 12  # default kept for keys not given
    assert s.db_url == f"sqlite:///{tmp_path / 'data' / 'paycycle.db'}"
    assert s.tracking_uri.startswith("sqlite:///")


def test_environment_overrides_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYCYCLE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    s = config.load(write(tmp_path, ""), root=tmp_path)
    assert s.db_url == "postgresql+psycopg://u@h/db"
    assert s.tracking_uri == "http://127.0.0.1:5000"


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = config.load(write(tmp_path, ""), root=tmp_path)
    with pytest.raises(ValidationError):
        s.params.data.customers = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data:\n  customers: lots\n", "data.customers"),
        ("data:\n  customers: -4\n", "data.customers"),
        ("data:\n  scenario: meteor\n", "data.scenario"),
        ("data:\n  start_date: yesterday\n", "data.start_date"),
        ("data:\n  custmers: 4\n", "data.custmers"),
        ("- just\n- a list\n", "expected a mapping"),
        ("data: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text), root=tmp_path)
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


def test_cli_reports_config_error_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    write(tmp_path, "data:\n  months: many\n")
    env = {**os.environ, "PAYCYCLE_ROOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "paycycle", "simulate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_USAGE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.months" in lines[0], done.stderr
