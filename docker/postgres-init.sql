-- One server, one database per concern: the subscription store, MLflow's backend, Optuna's studies, Prefect.
CREATE DATABASE mlflow;
CREATE DATABASE optuna;
CREATE DATABASE prefect;
