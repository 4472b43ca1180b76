#!/usr/bin/env bash
# Install (if needed), export the example Kedro project to dags/ and run it as a deployment does:
# Airflow's scheduler, dag-processor and API server on a local SQLite metadata DB (LocalExecutor),
# an MLflow tracking server and an S3 endpoint on loopback (moto), runs triggered through the REST
# API. --serve keeps the Airflow and MLflow UIs running afterwards, until Ctrl-C. Everything it
# writes stays inside this repository (.airflow/). See scripts/demo.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
exec "$repo/.venv/bin/python" "$repo/scripts/demo.py" "$@"
