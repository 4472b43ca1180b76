#!/bin/bash
# Run once, when the database cluster is created (docker-entrypoint-initdb.d). MLflow gets a role
# and a database of its own: the role owns only that database and can connect to no other
# (Airflow's metadata DB included), so whoever reaches MLflow's credentials does not reach
# Airflow's. The password comes from the environment through psql's \getenv, never argv.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv mlflow_password MLFLOW_DB_PASSWORD
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
SQL
