#!/bin/sh
# First start of the postgres container (/docker-entrypoint-initdb.d): one login role per service
# and one database per concern. Passwords come from the environment and reach SQL as psql
# variables (:'name' quotes them as literals), never pasted into the SQL text.
# Table privileges are granted after the migrations by docker/postgres-roles.sql (db-migrate).
# PAYCYCLE_DB_NAME_SUFFIX (empty in compose) lets tests/integration/test_postgres_roles.py run
# this very script on a shared server without touching real names.
set -eu
: "${PAYCYCLE_DB_OWNER_PASSWORD:?set PAYCYCLE_DB_OWNER_PASSWORD}"
: "${PAYCYCLE_DB_API_PASSWORD:?set PAYCYCLE_DB_API_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
: "${PREFECT_DB_PASSWORD:?set PREFECT_DB_PASSWORD}"

psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v suffix="${PAYCYCLE_DB_NAME_SUFFIX:-}" \
  -v owner_pw="$PAYCYCLE_DB_OWNER_PASSWORD" -v api_pw="$PAYCYCLE_DB_API_PASSWORD" \
  -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v prefect_pw="$PREFECT_DB_PASSWORD" <<'SQL'
\set owner paycycle_owner :suffix
\set api paycycle_api :suffix
\set mlflow mlflow :suffix
\set prefect prefect :suffix
\set store_db paycycle :suffix
\set optuna_db optuna :suffix
-- pipeline, Prefect worker, Dask: own the subscription store and Optuna's studies (they migrate)
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_pw';
-- the API: reads what it scores from and writes cancel intents (docker/postgres-roles.sql)
CREATE ROLE :"api" LOGIN PASSWORD :'api_pw';
CREATE ROLE :"mlflow" LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE :"prefect" LOGIN PASSWORD :'prefect_pw';

CREATE DATABASE :"store_db" OWNER :"owner";
CREATE DATABASE :"optuna_db" OWNER :"owner";
CREATE DATABASE :"mlflow" OWNER :"mlflow";
CREATE DATABASE :"prefect" OWNER :"prefect";
-- nobody connects to a database that is not theirs
REVOKE ALL ON DATABASE :"store_db", :"optuna_db", :"mlflow", :"prefect" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"store_db" TO :"api";
SQL
