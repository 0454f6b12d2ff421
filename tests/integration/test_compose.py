"""docker-compose.yml and Dockerfile, validated statically (no container engine runs here).

`docker compose config` is used too when a compose-capable client exists.

Secrets: every secret-looking variable is `${VAR:?set VAR}` (a `:-` default would ship a
credential), every variable is listed in `.env.example` with an empty value, every secret the
code reads from the environment reaches the compose file, each service gets only the secrets it
uses (no `env_file`), and nothing rewrites a credential into a file with `sed`.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ONE_SHOT = {"minio-buckets", "pipeline", "db-migrate", "mlflow-users"}
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|AUTH_STRING|ROOT_USER")
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z0-9_]+)(:?[-?+]?)([^}]*)\}")
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


def env_example_values() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def env_example() -> set[str]:
    return set(env_example_values())


# secrets a deployment may leave out (no key for a local Ollama): empty is their only default
OPTIONAL_SECRETS = {"PAYCYCLE_LLM_API_KEY"}


def secret_defaults(compose_text: str) -> list[str]:
    """Secret-looking variables that compose would fill with a default (`${VAR:-x}`, `${VAR-x}`)
    or use without demanding them (`${VAR}`): anything but `${VAR:?message}`, or `${VAR:-}`
    for an optional one."""
    return [
        m.group(0)
        for m in VAR.finditer(compose_text)
        if SECRET_NAME.search(m.group(1))
        and m.group(2) != ":?"
        and not (m.group(1) in OPTIONAL_SECRETS and m.group(0) == f"${{{m.group(1)}:-}}")
    ]


def service_env(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment") or {}
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


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
    used = {m.group(1) for m in VAR.finditer(COMPOSE_TEXT)}
    missing = used - env_example()
    assert not missing, (
        f"variables used in docker-compose.yml but absent from .env.example: {missing}"
    )


@pytest.mark.parametrize(
    ("hostile", "caught"),
    [
        ("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-postgres}", "${POSTGRES_PASSWORD:-postgres}"),
        ("X: ${PREFECT_AUTH_STRING:-admin:change-me}", "${PREFECT_AUTH_STRING:-admin:change-me}"),
        ("X: postgresql://u:${PAYCYCLE_DB_API_PASSWORD-pw}@db/x", "${PAYCYCLE_DB_API_PASSWORD-pw}"),
        ("X: ${PAYCYCLE_API_TOKEN}", "${PAYCYCLE_API_TOKEN}"),
        ("X: ${MLFLOW_FLASK_SERVER_SECRET_KEY:+x}", "${MLFLOW_FLASK_SERVER_SECRET_KEY:+x}"),
        ("X: ${PAYCYCLE_LLM_API_KEY:-sk-test}", "${PAYCYCLE_LLM_API_KEY:-sk-test}"),
    ],
)
def test_the_check_catches_a_defaulted_secret(hostile: str, caught: str) -> None:
    """Attack: a compose file that would start with a known credential; the check must fail it."""
    assert secret_defaults(COMPOSE_TEXT + "\n" + hostile) == [caught]


def test_no_secret_has_a_default() -> None:
    assert not secret_defaults(COMPOSE_TEXT)
    for name, svc in SERVICES.items():  # each service lists the secrets it needs
        assert "env_file" not in svc, f"{name}: env_file hands it every secret in .env"


def test_env_example_ships_no_secret_values() -> None:
    values = env_example_values()
    filled = {k: v for k, v in values.items() if SECRET_NAME.search(k) and k != "MINIO_ROOT_USER"}
    assert filled and not any(filled.values()), f"secrets with a value in .env.example: {filled}"


def test_every_secret_the_code_reads_is_in_env_example_and_compose() -> None:
    from notify import channels
    from paycycle.config import Settings

    from_settings = {
        f"PAYCYCLE_{name.upper()}"
        for name in Settings.model_fields
        if re.search("token|secret|password", name)
    }
    from_code = {channels.WEBHOOK_SECRET_ENV, channels.SMTP_PASSWORD_ENV}
    secrets = from_settings | from_code
    assert {"PAYCYCLE_API_TOKEN", "PAYCYCLE_LINK_SECRET"} <= secrets
    assert not secrets - env_example(), secrets - env_example()
    assert not {s for s in secrets if f"${{{s}:?" not in COMPOSE_TEXT}


def test_postgres_has_a_role_per_service_and_the_api_is_not_the_owner() -> None:
    init = (ROOT / "docker" / "postgres-init.sh").read_text()
    for var, role in (("owner", "paycycle_owner"), ("api", "paycycle_api"), ("mlflow", "mlflow"),
                      ("prefect", "prefect")):  # fmt: skip
        assert f"\\set {var} {role} :suffix" in init, role
        assert f'CREATE ROLE :"{var}" LOGIN PASSWORD :\'' in init, role
    assert "SUPERUSER" not in init and "CREATEDB" not in init and "CREATEROLE" not in init
    api = service_env("api")
    assert api["PAYCYCLE_DATABASE_URL"].startswith("postgresql+psycopg://paycycle_api:")
    for name in ("pipeline", "prefect-worker", "dask-worker", "db-migrate"):
        assert "paycycle_owner:" in service_env(name)["PAYCYCLE_DATABASE_URL"], name
    assert "mlflow:${MLFLOW_DB_PASSWORD" in (ROOT / "docker" / "mlflow-entrypoint.sh").read_text()
    assert (
        "prefect:${PREFECT_DB_PASSWORD:?"
        in service_env("prefect-server")["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    assert "postgres-roles.sql" in " ".join(SERVICES["db-migrate"]["command"])


def test_api_gets_only_its_own_secrets() -> None:
    api = " ".join(service_env("api").values())
    for foreign in ("OWNER_PASSWORD", "POSTGRES_PASSWORD", "MLFLOW_ADMIN", "MINIO_ROOT",
                    "WEBHOOK_SECRET", "SMTP_PASSWORD", "PREFECT_AUTH"):  # fmt: skip
        assert foreign not in api, foreign
    assert "${MLFLOW_READER_USER:?" in service_env("api")["MLFLOW_TRACKING_USERNAME"]
    assert "mlflow-users" in SERVICES["api"]["depends_on"]


def test_mlflow_auth_without_sed_or_a_password_in_files() -> None:
    for path in [ROOT / "docker-compose.yml", *sorted((ROOT / "docker").iterdir())]:
        assert not re.search(r"\bsed\b", path.read_text()), f"{path.name} runs sed"
    ini = configparser.ConfigParser()
    ini.read(ROOT / "docker" / "mlflow-auth.ini")
    assert "admin_password" not in ini["mlflow"] and ini["mlflow"]["default_permission"] == "READ"
    mlflow_env = service_env("mlflow")
    assert (
        mlflow_env["MLFLOW_AUTH_ADMIN_PASSWORD"]
        == "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD}"
    )
    assert "chown -R paycycle /app /mlflow-auth" in (ROOT / "Dockerfile").read_text()
    entry = (ROOT / "docker" / "mlflow-entrypoint.sh").read_text()
    assert "--app-name basic-auth" in entry and "MLFLOW_AUTH_CONFIG_PATH" in entry


def test_dockerfile_copies_every_package() -> None:
    """The image runs `paycycle` (cli/) and loads models (inference/): every wheel package."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    text = (ROOT / "Dockerfile").read_text()
    assert not [p for p in packages if f"COPY {p} ./{p}" not in text]


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
    values = {k: v or "x" * 24 for k, v in env_example_values().items()}
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
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


@pytest.mark.parametrize("script", ["postgres-init.sh", "mlflow-entrypoint.sh"])
def test_docker_scripts_parse_and_are_executable(script: str) -> None:
    path = ROOT / "docker" / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    done = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
