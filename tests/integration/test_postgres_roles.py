"""docker/postgres-init.sh and docker/postgres-roles.sql against the real PostgreSQL: the API
role can do what the API does (read scores, record a cancel intent through
`retention.saves.record_intent`) and nothing else; each service's role reaches only its own
database.

Each run executes the init script itself with `PAYCYCLE_DB_NAME_SUFFIX=_roles_test_<random>`
(roles `paycycle_api_roles_test_<random>`…, databases `paycycle_roles_test_<random>`…), migrates
as the owner, applies the roles SQL with `psql` as the owner exactly as the `db-migrate` service
does, then attacks as the API. Everything it made is dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from tests.conftest import PG_ADMIN_URL, PROJECT_ROOT

pytestmark = pytest.mark.postgres
INIT_SH = PROJECT_ROOT / "docker" / "postgres-init.sh"
ROLES_SQL = PROJECT_ROOT / "docker" / "postgres-roles.sql"
DENIED = "42501"  # insufficient_privilege (also "must be owner of table")
TODAY = dt.date(2026, 3, 2)
ROLES = ("paycycle_owner", "paycycle_api", "mlflow", "prefect")
DATABASES = ("paycycle", "optuna", "mlflow", "prefect")


@dataclass
class RolesDb:
    suffix: str

    @property
    def name(self) -> str:
        return f"paycycle{self.suffix}"

    @property
    def owner(self) -> str:
        return f"paycycle_owner{self.suffix}"

    @property
    def api(self) -> str:
        return f"paycycle_api{self.suffix}"

    def url(self, role: str, database: str | None = None) -> str:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgres@", f"{role}@", 1)
        return f"{base}/{database or self.name}"

    def apply_roles_sql(self) -> subprocess.CompletedProcess[str]:
        """`psql -f docker/postgres-roles.sql` as the owner, as the db-migrate service runs it."""
        return subprocess.run(
            ["psql", "-X", "-h", "127.0.0.1", "-U", self.owner, "-d", self.name]
            + ["-v", "ON_ERROR_STOP=1", "-v", f"api_role={self.api}", "-f", str(ROLES_SQL)],
            capture_output=True,
            text=True,
            timeout=60,
        )


def run_init_script(suffix: str, **passwords: str) -> subprocess.CompletedProcess[str]:
    """docker/postgres-init.sh as the postgres image runs it, against the local server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {
        "PGHOST": "127.0.0.1",
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": PG_ADMIN_URL.rsplit("/", 1)[1],
        "PAYCYCLE_DB_NAME_SUFFIX": suffix,
        "PAYCYCLE_DB_OWNER_PASSWORD": "owner-pw",
        "PAYCYCLE_DB_API_PASSWORD": "api-pw",
        "MLFLOW_DB_PASSWORD": "mlflow-pw",
        "PREFECT_DB_PASSWORD": "prefect-pw",
    }
    env = {k: v for k, v in (env | passwords).items() if v}
    return subprocess.run(["sh", str(INIT_SH)], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def roles_db() -> Iterator[RolesDb]:
    if shutil.which("psql") is None:
        pytest.skip("psql (postgresql-client) is not installed")
    db = RolesDb(f"_roles_test_{uuid.uuid4().hex[:10]}")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        done = run_init_script(db.suffix)
        assert done.returncode == 0, done.stderr
        yield db
    finally:
        with admin.connect() as conn:
            for name in DATABASES:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}{db.suffix}" WITH (FORCE)'))
            for role in ROLES:
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}{db.suffix}"'))
        admin.dispose()


def _seed(owner: Engine) -> None:
    """One plan, one customer with a live subscription and a batch score, all as the owner."""
    with owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO plans VALUES (1, 'pro', 2, 49.0, 1000, 490.0, '');"
                "INSERT INTO customers VALUES (7, '2025-01-05', 'BR', 'BRL', 'pt-BR',"
                " 'c7@example.com', 'ads', 'smb');"
                "INSERT INTO subscriptions (subscription_id, customer_id, plan_id, cycle,"
                " start_date, billing_day, status, addons)"
                " VALUES (70, 7, 1, 'monthly', '2025-01-05', 5, 'active', '');"
                "INSERT INTO scores (customer_id, as_of, churn_probability, churn_model_version)"
                " VALUES (7, '2026-03-01', 0.42, '3')"
            )
        )


def _denied(engine: Engine, sql: str) -> None:
    with pytest.raises(DBAPIError) as info, engine.begin() as conn:
        conn.execute(text(sql))
    assert info.value.orig.sqlstate == DENIED, f"{sql}: {info.value.orig}"


@pytest.fixture()
def migrated(roles_db: RolesDb) -> Iterator[tuple[RolesDb, Engine, Engine]]:
    from paycycle.store import upgrade

    upgrade(roles_db.url(roles_db.owner))
    owner = create_engine(roles_db.url(roles_db.owner))
    api = create_engine(roles_db.url(roles_db.api))
    _seed(owner)
    done = roles_db.apply_roles_sql()
    assert done.returncode == 0, done.stderr
    try:
        yield roles_db, owner, api
    finally:
        api.dispose()
        owner.dispose()


def test_api_role_reads_scores_and_records_a_cancel_intent(migrated) -> None:
    from paycycle import config
    from retention.saves import record_intent

    _, owner, api = migrated
    with api.connect() as conn:
        assert conn.execute(text("SELECT churn_probability FROM scores")).scalar_one() == 0.42
    params = config.load(root=PROJECT_ROOT).params.retention
    first = record_intent(api, 7, "too_expensive", TODAY, params)
    second = record_intent(api, 7, "not_using", TODAY, params)
    assert second["intent_id"] == first["intent_id"] + 1
    with owner.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cancel_intents")).scalar_one() == 2


@pytest.mark.parametrize(
    "attack",
    [
        "DELETE FROM cancel_intents",
        "UPDATE cancel_intents SET saved = true",
        "TRUNCATE scores",
        "DELETE FROM scores",
        "INSERT INTO scores (customer_id, as_of, churn_probability, churn_model_version)"
        " VALUES (7, '2026-03-02', 0.1, 'x')",
        "DROP TABLE scores",
        "DROP TABLE cancel_intents",
        "ALTER TABLE customers ADD COLUMN pwned text",
        "INSERT INTO customers VALUES (8, '2025-01-05', 'BR', 'BRL', 'pt-BR', 'e', 'ads', 'smb')",
        "UPDATE customers SET email = 'attacker@example.com'",
        "DELETE FROM subscriptions",
        "UPDATE plans SET monthly_price = 0",
        "SELECT * FROM payments",
        "SELECT * FROM invoices",
        "SELECT * FROM notices",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE TABLE pwned (id int)",
        "SELECT nextval('notices_notice_id_seq')",
        # rollouts: the service may record readings or end one, never pick the challenger
        "INSERT INTO rollouts (model, challenger_version, state) VALUES ('m', '9', 'running')",
        "UPDATE rollouts SET challenger_version = '9'",
        "UPDATE rollouts SET stage = 3",
        "DELETE FROM rollouts",
    ],
)
def test_api_role_cannot_delete_drop_or_write_customers(migrated, attack: str) -> None:
    _, owner, api = migrated
    _denied(api, attack)
    with owner.connect() as conn:  # nothing already stored was touched
        assert conn.execute(text("SELECT email FROM customers")).scalar_one() == "c7@example.com"
        assert conn.execute(text("SELECT count(*) FROM scores")).scalar_one() == 1


def test_roles_sql_is_repeatable_and_covers_the_idempotency_key_table(migrated) -> None:
    """Re-applied on every start; `cancel_intent_keys` (migration 0004) gets exactly what
    `/cancel-intent` needs: read, insert, and delete of expired keys, never DROP or TRUNCATE."""
    db, owner, api = migrated
    for _ in range(2):
        done = db.apply_roles_sql()
        assert done.returncode == 0, done.stderr
    with api.begin() as conn:
        granted = {
            priv: conn.execute(
                text(f"SELECT has_table_privilege('cancel_intent_keys', '{priv}')")
            ).scalar_one()
            for priv in ("SELECT", "INSERT", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
        }
    assert granted == {
        "SELECT": True,
        "INSERT": True,
        "DELETE": True,
        "TRUNCATE": False,
        "REFERENCES": False,
        "TRIGGER": False,
    }
    _denied(api, "DROP TABLE cancel_intent_keys")


def test_roles_sql_defaults_to_the_compose_role_name() -> None:
    assert "\\set api_role paycycle_api" in Path(ROLES_SQL).read_text()
    assert "\\set api paycycle_api :suffix" in INIT_SH.read_text()


@pytest.mark.parametrize(
    ("role", "database"),
    [
        ("paycycle_api", "optuna"),
        ("paycycle_api", "mlflow"),
        ("paycycle_api", "prefect"),
        ("mlflow", "paycycle"),
        ("prefect", "paycycle"),
        ("mlflow", "prefect"),
    ],
)
def test_a_role_cannot_connect_to_another_services_database(
    roles_db: RolesDb, role: str, database: str
) -> None:
    engine = create_engine(roles_db.url(role + roles_db.suffix, database + roles_db.suffix))
    try:
        with pytest.raises(DBAPIError) as info:
            engine.connect()
        assert "does not have CONNECT privilege" in str(info.value.orig), info.value.orig
    finally:
        engine.dispose()


def test_init_script_passwords_cannot_inject_sql() -> None:
    """Attack: a password that closes the quote and runs its own statement."""
    tag = uuid.uuid4().hex[:10]
    suffix, evil = f"_roles_test_{tag}", f"pwned_{tag}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        done = run_init_script(suffix, MLFLOW_DB_PASSWORD=f"x'; CREATE ROLE {evil}; --")
        assert done.returncode == 0, done.stderr
        with admin.connect() as conn:
            roles = set(conn.execute(text("SELECT rolname FROM pg_roles")).scalars())
            assert f"mlflow{suffix}" in roles and evil not in roles
    finally:
        with admin.connect() as conn:
            for name in DATABASES:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}{suffix}" WITH (FORCE)'))
            for role in (*(r + suffix for r in ROLES), evil):
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_init_script_refuses_a_missing_password() -> None:
    done = run_init_script(f"_roles_test_{uuid.uuid4().hex[:10]}", PAYCYCLE_DB_API_PASSWORD="")
    assert done.returncode != 0 and "set PAYCYCLE_DB_API_PASSWORD" in done.stderr


def test_api_role_records_rollout_readings_and_ends_a_rollout(migrated) -> None:
    """The service's two writes to `rollouts` (migration 0007), as the API role."""
    from inference import rollout_state

    _, owner, api = migrated
    view = rollout_state.begin(owner, "paycycle-churn", "4", "3")
    rollout_state.report(api, view.rollout_id, {"error_rate": 0.0})
    assert rollout_state.end(api, view.rollout_id, "rolled_back", "error rate 0.2 > 0.02")
    assert rollout_state.get(owner, view.rollout_id).state == "rolled_back"
