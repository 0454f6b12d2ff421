"""docker/postgres-roles.sql against the real PostgreSQL: the API role can do what the API does
(read scores, record a cancel intent through `retention.saves.record_intent`) and nothing else.

Each test run makes its own roles and a throwaway database `paycycle_roles_test_<random>` that
mirror docker/postgres-init.sh (owner migrates, API role may only connect), applies the SQL with
`psql` as the table owner, exactly as the `db-migrate` service does, then attacks as the API.
"""

from __future__ import annotations

import datetime as dt
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
ROLES_SQL = PROJECT_ROOT / "docker" / "postgres-roles.sql"
DENIED = "42501"  # insufficient_privilege (also "must be owner of table")
TODAY = dt.date(2026, 3, 2)


@dataclass
class RolesDb:
    name: str
    owner: str
    api: str

    def url(self, role: str) -> str:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgres@", f"{role}@", 1)
        return f"{base}/{self.name}"

    def apply_roles_sql(self) -> subprocess.CompletedProcess[str]:
        """`psql -f docker/postgres-roles.sql` as the owner, as the db-migrate service runs it."""
        return subprocess.run(
            ["psql", "-X", "-h", "127.0.0.1", "-U", self.owner, "-d", self.name]
            + ["-v", "ON_ERROR_STOP=1", "-v", f"api_role={self.api}", "-f", str(ROLES_SQL)],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture()
def roles_db() -> Iterator[RolesDb]:
    if shutil.which("psql") is None:
        pytest.skip("psql (postgresql-client) is not installed")
    tag = uuid.uuid4().hex[:10]
    db = RolesDb(f"paycycle_roles_test_{tag}", f"paycycle_rt_owner_{tag}", f"paycycle_rt_api_{tag}")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # what docker/postgres-init.sh does for the real roles
        conn.execute(text(f'CREATE ROLE "{db.owner}" LOGIN'))
        conn.execute(text(f'CREATE ROLE "{db.api}" LOGIN'))
        conn.execute(text(f'CREATE DATABASE "{db.name}" OWNER "{db.owner}"'))
        conn.execute(text(f'REVOKE ALL ON DATABASE "{db.name}" FROM PUBLIC'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{db.name}" TO "{db.api}"'))
    try:
        yield db
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{db.api}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{db.owner}"'))
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
    ],
)
def test_api_role_cannot_delete_drop_or_write_customers(migrated, attack: str) -> None:
    _, owner, api = migrated
    _denied(api, attack)
    with owner.connect() as conn:  # nothing already stored was touched
        assert conn.execute(text("SELECT email FROM customers")).scalar_one() == "c7@example.com"
        assert conn.execute(text("SELECT count(*) FROM scores")).scalar_one() == 1


def test_roles_sql_is_repeatable_and_covers_the_idempotency_key_table(migrated) -> None:
    """Re-applied on every start; `cancel_intent_keys` (added by another migration) is granted
    once it exists, and only then."""
    db, owner, api = migrated
    with owner.begin() as conn:
        conn.execute(
            text("CREATE TABLE cancel_intent_keys (id bigserial PRIMARY KEY, key text UNIQUE)")
        )
    _denied(api, "INSERT INTO cancel_intent_keys (key) VALUES ('k0')")
    done = db.apply_roles_sql()
    assert done.returncode == 0, done.stderr
    with api.begin() as conn:
        conn.execute(text("INSERT INTO cancel_intent_keys (key) VALUES ('k1')"))
        assert conn.execute(text("SELECT key FROM cancel_intent_keys")).scalar_one() == "k1"
    _denied(api, "DELETE FROM cancel_intent_keys")
    _denied(api, "DROP TABLE cancel_intent_keys")


def test_roles_sql_defaults_to_the_compose_role_name() -> None:
    sql = Path(ROLES_SQL).read_text()
    assert "\\set api_role paycycle_api" in sql
    assert "paycycle_api" in (PROJECT_ROOT / "docker" / "postgres-init.sh").read_text()
