#!/usr/bin/env bash
# Install (if needed), export the example Kedro project to dags/ and run its DAG with a real
# Airflow on a local SQLite metadata DB, MLflow tracking in SQLite and S3 storage on a loopback
# S3 endpoint (moto in server mode). Everything it writes stays inside this repository.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"

export AIRFLOW_HOME="$repo/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
export PATH="$repo/.venv/bin:$PATH"
project="$repo/examples/wine_classifier"
mkdir -p "$AIRFLOW_HOME"
cat > "$AIRFLOW_HOME/env.sh" <<ENV
# source this file to use the demo's Airflow from a shell: airflow dags list, airflow standalone...
export AIRFLOW_HOME="$AIRFLOW_HOME" AIRFLOW__CORE__DAGS_FOLDER="$AIRFLOW__CORE__DAGS_FOLDER"
export AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PATH="$repo/.venv/bin:\$PATH"
ENV

# What one demo run tracks and stores lives and dies together: the S3 endpoint (moto, in memory)
# lasts as long as the demo, so the MLflow store that points into it is made anew each run too.
state="$AIRFLOW_HOME/demo"
rm -rf "$state" && mkdir -p "$state"

# An S3 endpoint on loopback for the demo's lifetime; the project's `s3` env reads these
# variables through conf/s3/credentials.yml (demo values: moto accepts any credentials).
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
setsid moto_server -H 127.0.0.1 -p "$port" > "$state/moto.log" 2>&1 &
moto_pid=$!
trap 'kill -- -"$moto_pid" 2>/dev/null || true' EXIT
export WINE_S3_ENDPOINT_URL="http://127.0.0.1:$port" WINE_S3_KEY=demo-access-key WINE_S3_SECRET=demo-secret-key
for _ in $(seq 1 60); do curl -sf "$WINE_S3_ENDPOINT_URL/moto-api/" > /dev/null && break; sleep 0.5; done
python - <<'PY'
import os, boto3
boto3.client("s3", endpoint_url=os.environ["WINE_S3_ENDPOINT_URL"], region_name="us-east-1",
             aws_access_key_id=os.environ["WINE_S3_KEY"],
             aws_secret_access_key=os.environ["WINE_S3_SECRET"]).create_bucket(Bucket="wine-classifier")
PY
echo "==> S3 endpoint on $WINE_S3_ENDPOINT_URL (moto), bucket wine-classifier"

# The MLflow tracking server: runs in SQLite, artifacts proxied to S3 with the server's own keys
# (the tasks get none for MLflow), as docker-compose.yaml deploys it.
mlflow_port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
AWS_ACCESS_KEY_ID=demo-mlflow-key AWS_SECRET_ACCESS_KEY=demo-mlflow-secret \
  MLFLOW_S3_ENDPOINT_URL="$WINE_S3_ENDPOINT_URL" setsid mlflow server --host 127.0.0.1 \
  --port "$mlflow_port" --workers 1 --backend-store-uri "sqlite:///$state/mlflow.db" \
  --artifacts-destination s3://wine-classifier/mlflow > "$state/mlflow.log" 2>&1 &
mlflow_pid=$!
trap 'kill -- -"$moto_pid" -"$mlflow_pid" 2>/dev/null || true' EXIT
export MLFLOW_TRACKING_URI="http://127.0.0.1:$mlflow_port"
for _ in $(seq 1 120); do curl -sf "$MLFLOW_TRACKING_URI/health" > /dev/null && break; sleep 0.5; done
curl -sf "$MLFLOW_TRACKING_URI/health" > /dev/null || { tail -n 40 "$state/mlflow.log"; exit 1; }
echo "==> MLflow tracking server on $MLFLOW_TRACKING_URI (runs in $state/mlflow.db, artifacts on s3://wine-classifier/mlflow)"

echo "==> Airflow metadata DB: $AIRFLOW_HOME/airflow.db"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -n 40 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

echo "==> kedro airflow export --env s3 -p __default__ -p inference (examples/wine_classifier -> dags/)"
export_log="$AIRFLOW_HOME/export.log"
if ! (cd "$project" && kedro airflow export --env s3 -p __default__ -p inference --target-dir "$repo/dags" --check) > "$export_log" 2>&1; then
  tail -n 40 "$export_log"; echo "export failed; full log: $export_log" >&2; exit 1
fi
sed -n '/^DAG  /,/^$/p' "$export_log"  # the table of what was written, without Kedro's log lines

# Training (with the promotion gate), then the inference DAG that the model's Asset schedules
# (a scheduler would trigger it; `dags test` runs it right away), then training again with a
# weaker random forest through the DAG run's conf (as the trigger form sets Kedro parameters):
# its model is registered but kept out of @champion, and no inference follows.
weaker='{"random_forest": {"model_options": {"estimator": "random_forest", "n_estimators": 2, "max_depth": 1, "random_state": 42}}}'
run_dag() {  # dag_id, log name, extra arguments of `airflow dags test`
  local dag_id="$1" log="$AIRFLOW_HOME/demo-$2.log"
  shift 2
  echo "==> airflow dags test $dag_id $* (log: $log)"
  if ! airflow dags test "$dag_id" "$@" > "$log" 2>&1; then
    tail -n 60 "$log"; echo "DAG run failed; full log: $log" >&2; exit 1
  fi
  grep -E "DagRun Finished" "$log" | sed -E 's/.*(dag_id=[^,]*).*(run_id=[^,]*).*(state=[^,]*).*/\1 \2 \3/'
  grep -q "DagRun Finished.*state=success" "$log" || { echo "DAG run did not succeed; see $log" >&2; exit 1; }
}
run_dag wine_classifier_s3 training
run_dag wine_classifier__inference_s3 inference
run_dag wine_classifier_s3 training-weaker --conf "$weaker"

echo
rm -rf "$AIRFLOW_HOME/demo-s3"
python "$repo/scripts/demo_report.py" "$AIRFLOW_HOME/demo-s3"
echo "Reports:       .airflow/demo-s3/data/08_reporting/*/metrics.json and confusion_matrix.png (copied from the demo's S3)"
echo "MLflow UI:     mlflow ui --backend-store-uri sqlite:///$state/mlflow.db  (artifacts were on the demo's S3: see .airflow/demo-s3)"
echo "Airflow UI:    source .airflow/env.sh && airflow standalone"
