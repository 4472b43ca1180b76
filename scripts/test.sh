#!/usr/bin/env bash
# Install (if needed), lint and type-check, then run the test suite. Extra arguments go to pytest,
# e.g. -m "not slow". The tests run in AKM_TEST_WORKERS processes (default 2, one per core of the
# machine it is tested on; 0 runs them in this one): the real deployments' tests wait on
# schedulers, retries and servers more than they compute.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
# The browser test (tests/test_demo.py) drives Debian's headless Chromium through its chromedriver
if [[ ! -x /usr/bin/chromedriver ]] && command -v apt-get > /dev/null && [[ "$(id -u)" == 0 ]]; then
  echo "Installing chromium and chromium-driver (apt-get) for the browser test..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver > /dev/null 2>&1 \
    || { apt-get update -q > /dev/null && apt-get install -y -q chromium chromium-driver > /dev/null; } \
    || echo "warning: chromium could not be installed: the browser test will be skipped" >&2
fi
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
cd "$repo"
"$repo/.venv/bin/ruff" check airflow_kedro_mlflow tests benchmarks scripts examples
"$repo/.venv/bin/mypy"
"$repo/.venv/bin/lint-imports" --no-cache  # pyproject.toml: layers that only point down
exec "$repo/.venv/bin/python" -m pytest -n "${AKM_TEST_WORKERS:-2}" --dist loadgroup "$@"
