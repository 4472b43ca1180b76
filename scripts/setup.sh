#!/usr/bin/env bash
# Create .venv and install this package with its test and example extras. Idempotent: a second
# call installs nothing unless setup.cfg changed. Source it, or run it, from anywhere.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="$repo/.venv"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python >= 3.11 is required (found: $("$python" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"

stamp="$venv/.airflow-kedro-mlflow-installed"
wanted="$(cat "$repo/setup.cfg" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  echo "Installing airflow-kedro-mlflow and its dependencies into $venv (a few minutes the first time)..."
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$repo[test]"
  # kedro-mlflow is optional: the tests run with and without it, so it goes beside the venv
  # (its dependencies are all in it already) and only the test runs that ask for it see it.
  rm -rf "$venv/extras/kedro-mlflow"
  "$venv/bin/python" -m pip install --quiet --no-deps --target "$venv/extras/kedro-mlflow" "kedro-mlflow>=2,<2.1"
  # The cncf-kubernetes provider (the pod mode's tests) likewise: installed, Airflow initializes
  # it in every process (about 2 s each on a 2-core machine), so only those tests see it.
  rm -rf "$venv/extras/kubernetes"
  "$venv/bin/python" -m pip install --quiet --no-deps --target "$venv/extras/kubernetes" \
    "apache-airflow-providers-cncf-kubernetes>=10,<11" "kubernetes>=36.0.1,<37" \
    "kubernetes_asyncio>=36,<37" aiofiles durationpy oauthlib requests-oauthlib websocket-client
  echo "$wanted" > "$stamp"
fi
