#!/usr/bin/env bash
# Install (if needed) and run the test suite. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
cd "$repo"
exec "$repo/.venv/bin/python" -m pytest "$@"
