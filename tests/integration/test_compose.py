"""docker-compose.yml and Dockerfile, validated statically (no container engine runs here).

`docker compose config` is used too when a compose-capable client exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ONE_SHOT = {"minio-buckets", "pipeline"}
REQUIRED = {
    "postgres",
    "minio",
    "mlflow",
    "prefect-server",
    "prefect-worker",
    "api",
    "pipeline",
    "dask-scheduler",
    "dask-worker",
}


def env_example() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {ln.split("=", 1)[0] for ln in lines if "=" in ln and not ln.startswith("#")}


def test_required_services_present() -> None:
    assert set(SERVICES) >= REQUIRED


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_long_running_services_have_healthchecks(name: str) -> None:
    check = SERVICES[name].get("healthcheck")
    assert check and not check.get("disable") and check.get("test"), name


def test_ports_bind_loopback_only() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_every_variable_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)\}", text))  # ${VAR} without a :- default
    missing = used - env_example()
    assert not missing, f"variables used without a default but absent from .env.example: {missing}"


def test_named_volumes_declared_and_bind_mounts_exist() -> None:
    declared = set(COMPOSE.get("volumes", {}))
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} missing"
            else:
                assert src in declared, f"{name}: volume {src} not declared"


def test_dockerfile_copies_existing_paths_and_uses_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    for _name, svc in SERVICES.items():
        if "build" in svc:
            assert (
                (ROOT / svc["build"] / "Dockerfile").exists()
                if isinstance(svc["build"], str)
                else True
            )


def test_entrypoint_scripts_exist() -> None:
    for name, svc in SERVICES.items():
        entry = svc.get("entrypoint")
        if isinstance(entry, list) and entry and entry[0].startswith("/app/"):
            assert (ROOT / entry[0].removeprefix("/app/")).exists(), name


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="no docker compose client on this machine",
)
def test_docker_compose_config(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    shutil.copy(ROOT / ".env.example", env)
    done = subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(env),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
