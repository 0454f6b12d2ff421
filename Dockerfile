# PayCycle image: the same uv.lock as development, no dev dependencies.
# Used by docker-compose for the API (BentoML), the MLflow server, the Prefect worker, Dask and the pipeline.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PREFECT_HOME=/app/.prefect

RUN apt-get update \
 && apt-get install -y --no-install-recommends git curl postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir uv

WORKDIR /app
# Dependencies first (cached layer): only the lock decides what is installed.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY paycycle ./paycycle
COPY features ./features
COPY inference ./inference
COPY training ./training
COPY serving ./serving
COPY monitoring ./monitoring
COPY retention ./retention
COPY notify ./notify
COPY flows ./flows
COPY cli ./cli
COPY docker ./docker
COPY params.yaml dvc.yaml bentofile.yaml ./
RUN uv sync --frozen --no-dev

# /mlflow-auth: the MLflow user store's volume (docker/mlflow-auth.ini); a fresh named volume
# takes this folder's owner, so the non-root server can write it
RUN useradd --create-home --uid 1000 paycycle && mkdir -p /mlflow-auth \
 && chown -R paycycle /app /mlflow-auth
USER paycycle
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1
ENTRYPOINT ["paycycle"]
CMD ["--help"]
