#!/usr/bin/env bash
# Install (if needed), export the example Kedro project to dags/ and run its DAG with a real
# Airflow on a local SQLite metadata DB. Everything it writes stays inside this repository.
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
log="$AIRFLOW_HOME/demo-dag-test.log"
mkdir -p "$AIRFLOW_HOME"
cat > "$AIRFLOW_HOME/env.sh" <<ENV
# source this file to use the demo's Airflow from a shell: airflow dags list, airflow standalone...
export AIRFLOW_HOME="$AIRFLOW_HOME" AIRFLOW__CORE__DAGS_FOLDER="$AIRFLOW__CORE__DAGS_FOLDER"
export AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PATH="$repo/.venv/bin:\$PATH"
ENV

echo "==> Airflow metadata DB: $AIRFLOW_HOME/airflow.db"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -n 40 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

echo "==> kedro airflow export (project: examples/wine_classifier -> dags/)"
(cd "$project" && kedro airflow export --target-dir "$repo/dags" --check 2>/dev/null)

echo "==> airflow dags test wine_classifier (log: $log)"
if ! airflow dags test wine_classifier > "$log" 2>&1; then
  tail -n 60 "$log"; echo "DAG run failed; full log: $log" >&2; exit 1
fi
grep -E "DagRun Finished" "$log" | sed -E 's/.*(dag_id=[^,]*).*(run_id=[^,]*).*(state=[^,]*).*/\1 \2 \3/'
grep -q "state=success" "$log" || { echo "DAG run did not succeed; see $log" >&2; exit 1; }

echo
echo "Results:"
echo "  models (versioned by DAG run): $(cd "$project" && ls -d data/06_models/*/model.pkl/* | tail -n 2 | sed "s|^|$project/|" | tr '\n' ' ')"
for ns in random_forest logistic_regression; do
  echo "  $ns metrics: $project/data/08_reporting/$ns/metrics.json  $(cat "$project/data/08_reporting/$ns/metrics.json")"
done
echo "  plots: $project/data/08_reporting/*/confusion_matrix.png"
echo "  Airflow task logs and DB: $AIRFLOW_HOME"
echo "  Airflow UI on this DB: source .airflow/env.sh && airflow standalone"
