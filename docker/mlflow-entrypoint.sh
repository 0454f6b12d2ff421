#!/bin/sh
# Start the MLflow server with basic auth, taking the admin credentials from the environment.
set -eu
mkdir -p /mlflow-auth
sed -e "s/^admin_username = .*/admin_username = ${MLFLOW_ADMIN_USER}/" \
    -e "s/^admin_password = .*/admin_password = ${MLFLOW_ADMIN_PASSWORD}/" \
    /app/docker/mlflow-auth.ini > /mlflow-auth/auth.ini
export MLFLOW_AUTH_CONFIG_PATH=/mlflow-auth/auth.ini
exec mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 \
  --backend-store-uri "postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/mlflow" \
  --artifacts-destination s3://mlflow/artifacts --serve-artifacts
