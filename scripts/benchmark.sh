#!/usr/bin/env bash
# Install (if needed) and run the benchmarks: one table of figures, each beside its baseline.
# Extra arguments go to benchmarks/run.py, e.g. --quick (no real scheduler) or --rounds 3.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
cd "$repo"
exec "$repo/.venv/bin/python" -m benchmarks.run "$@"
