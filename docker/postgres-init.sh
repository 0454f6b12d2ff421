#!/bin/sh
# First start of the postgres container (/docker-entrypoint-initdb.d): one login role per service
# and one database per concern. Passwords come from the environment and reach SQL as psql
# variables (:'name' quotes them as literals), never pasted into the SQL text.
# Table privileges are granted after the migrations by docker/postgres-roles.sql (db-migrate).
set -eu
: "${PAYCYCLE_DB_OWNER_PASSWORD:?set PAYCYCLE_DB_OWNER_PASSWORD}"
: "${PAYCYCLE_DB_API_PASSWORD:?set PAYCYCLE_DB_API_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
: "${PREFECT_DB_PASSWORD:?set PREFECT_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_pw="$PAYCYCLE_DB_OWNER_PASSWORD" -v api_pw="$PAYCYCLE_DB_API_PASSWORD" \
  -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v prefect_pw="$PREFECT_DB_PASSWORD" <<'SQL'
-- pipeline, Prefect worker, Dask: own the subscription store and Optuna's studies (they migrate)
CREATE ROLE paycycle_owner LOGIN PASSWORD :'owner_pw';
-- the API: reads what it scores from and writes cancel intents (docker/postgres-roles.sql)
CREATE ROLE paycycle_api LOGIN PASSWORD :'api_pw';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE prefect LOGIN PASSWORD :'prefect_pw';

CREATE DATABASE paycycle OWNER paycycle_owner;
CREATE DATABASE optuna OWNER paycycle_owner;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE prefect OWNER prefect;
-- nobody connects to a database that is not theirs
REVOKE ALL ON DATABASE paycycle, optuna, mlflow, prefect FROM PUBLIC;
GRANT CONNECT ON DATABASE paycycle TO paycycle_api;
SQL
