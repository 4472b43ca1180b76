#!/usr/bin/env bash
# Refuse to start the stack while a setting named in the arguments is empty or still a
# placeholder of .env.example: a deployment with "change-me" passwords must not come up.
set -uo pipefail
status=0
for name in "$@"; do
  value="${!name-}"
  if [[ -z "$value" ]]; then
    echo "preflight: $name is not set: set it in .env (see .env.example)" >&2
    status=1
  elif [[ "$value" == change-me* ]]; then
    echo "preflight: $name is still the placeholder of .env.example: set a value of your own in .env" >&2
    status=1
  fi
done
for name in AIRFLOW_JWT_SECRET AIRFLOW_API_SECRET_KEY S3_ROOT_PASSWORD S3_APP_SECRET_KEY \
    MLFLOW_S3_SECRET_KEY MLFLOW_DB_PASSWORD MLFLOW_ADMIN_PASSWORD MLFLOW_WORKERS_PASSWORD \
    MLFLOW_FLASK_SECRET_KEY; do
  value="${!name-}"
  if [[ " $* " == *" $name "* && -n "$value" && "$value" != change-me* && ${#value} -lt 16 ]]; then
    echo "preflight: $name is shorter than 16 characters" >&2
    status=1
  fi
done
if [[ " $* " == *" S3_APP_ACCESS_KEY "* && "${S3_APP_ACCESS_KEY-}" == "${S3_ROOT_USER-}" ]]; then
  echo "preflight: S3_APP_ACCESS_KEY must not be MinIO's root user (the workers get it)" >&2
  status=1
fi
if [[ " $* " == *" MLFLOW_WORKERS_USER "* && "${MLFLOW_WORKERS_USER-}" == "${MLFLOW_ADMIN_USER-}" ]]; then
  echo "preflight: MLFLOW_WORKERS_USER must not be MLflow's admin (the workers log in as it)" >&2
  status=1
fi
[[ $status -eq 0 ]] && echo "preflight: settings ok"
exit $status
