"""Create (or re-key) the read-only MLflow user that serving loads models with.

Runs once the basic-auth server is healthy (`mlflow-users` in docker-compose.yml), through
MLflow's own auth client (the users REST API), as the admin:

    MLFLOW_TRACKING_URI=http://mlflow:5000 MLFLOW_TRACKING_USERNAME=<admin> \\
    MLFLOW_TRACKING_PASSWORD=<admin password> MLFLOW_READER_USER=serving \\
    MLFLOW_READER_PASSWORD=<reader password> python docker/mlflow-users.py

The reader gets no grant and is not an admin, so the server's `default_permission = READ`
(docker/mlflow-auth.ini) is all it has: it loads `models:/<name>@champion`, it cannot log, move an
alias or delete. MLflow's basic auth (without workspaces) still lets any user create a *new*
registered model and own it, so the script first registers PayCycle's model names as the admin:
the reader can never squat `paycycle-recommender` before the first training and set its own
`champion` there. Running it again sets the reader's password to the current value.
Exit codes: 0 done, 2 a variable is missing, 1 the server refused (message on one line).
"""

from __future__ import annotations

import os
import sys
import warnings

REQUIRED = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_READER_USER",
    "MLFLOW_READER_PASSWORD",
)


def ensure_reader(tracking_uri: str, username: str, password: str) -> str:
    """Create `username` with `password`, or set its password if it exists; never an admin.

    Returns:
        "created" or "updated".
    """
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    client = AuthServiceClient(tracking_uri)
    try:
        client.create_user(username, password)
        done = "created"
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.update_user_password(username, password)
        done = "updated"
    client.update_user_admin(username, False)
    return done


def reserve_models(tracking_uri: str, names: tuple[str, ...]) -> list[str]:
    """Create the registered models `names` as the admin where missing; returns those created."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client, created = MlflowClient(tracking_uri), []
    for name in names:
        try:
            client.create_registered_model(name)
            created.append(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return created


def main() -> int:
    warnings.simplefilter("ignore")  # library deprecation chatter is not the operator's business
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        print(f"error: {', '.join(missing)}: not set", file=sys.stderr)
        return 2
    env = os.environ
    if env["MLFLOW_READER_USER"] == env["MLFLOW_TRACKING_USERNAME"]:
        print("error: MLFLOW_READER_USER: must differ from the admin user", file=sys.stderr)
        return 2
    try:
        from inference.registry import MODELS

        reserve_models(env["MLFLOW_TRACKING_URI"], MODELS)
        done = ensure_reader(
            env["MLFLOW_TRACKING_URI"], env["MLFLOW_READER_USER"], env["MLFLOW_READER_PASSWORD"]
        )
    except Exception as exc:  # one line for the operator, not a traceback
        message = " ".join(str(exc).split())[:300]
        print(f"error: {exc.__class__.__name__}: {message}", file=sys.stderr)
        return 1
    print(f"mlflow-users: read-only user {env['MLFLOW_READER_USER']!r} {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
