#!/bin/sh
# The MLflow server with basic auth. Credentials come from the environment only: MLflow reads
# MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD itself (nothing is substituted into a file), the backend
# password reaches the URL from MLFLOW_DB_PASSWORD (hex, see .env.example).
set -eu
: "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_ADMIN_USER}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
export MLFLOW_AUTH_CONFIG_PATH=/app/docker/mlflow-auth.ini
exec mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 \
  --backend-store-uri "postgresql+psycopg://mlflow:${MLFLOW_DB_PASSWORD}@postgres:5432/mlflow" \
  --artifacts-destination s3://mlflow/artifacts --serve-artifacts
