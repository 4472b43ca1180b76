#!/usr/bin/env bash
# Bring docker-compose.yaml up for real and run tests/test_compose_stack.py against it: on the
# stand-in images of docker/standins/ (built from Debian's packages; no registry needed). Needs
# root and Debian's docker.io, docker-compose and debootstrap; starts the Docker engine if it is
# not running. Measured on a 2-core machine: about 25 minutes the first time (stand-in images 8,
# the project's image about 5, the tests 10), 12 from a fresh clone with the stand-ins built.
# Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    echo "error: no Docker engine: apt-get install -y docker.io docker-compose debootstrap" >&2
    exit 1
  fi
  echo "Starting the Docker engine (log: /tmp/dockerd.log)..."
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
echo "Building the stand-in images (docker/standins/build.sh)..."
"$repo/docker/standins/build.sh"
cd "$repo"
AKM_COMPOSE_STACK=1 KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 \
  exec "$repo/.venv/bin/python" -m pytest tests/test_compose_stack.py "$@"
