#!/usr/bin/env bash
# Build stand-ins for the images docker-compose.yaml pulls, from Debian's packages, where no image
# registry is reachable (as on the machine this project is tested on): the base from debootstrap,
# then Airflow (Debian's Python 3.11), PostgreSQL 15, Redis 7.0 and an S3 server (moto, IAM
# enforced) in place of MinIO. docker-compose.standins.yaml points the stack at them:
#
#   docker/standins/build.sh
#   docker compose -f docker-compose.yaml -f docker/standins/docker-compose.standins.yaml up -d
#
# Needs root (debootstrap), a running Docker engine and the package index. Airflow's constraints
# file (GitHub) cannot be fetched there either: the stand-in carries the pins of this repository's
# test environment (.venv, scripts/setup.sh) as its constraints file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
airflow_version="${AIRFLOW_VERSION:-3.3.2}"

if ! docker image inspect akm-standin/debian:bookworm >/dev/null 2>&1; then
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,curl,procps \
    bookworm "$root" "$mirror" >/dev/null
  # The host's CA bundle: where the package index is reached through a proxy of its own CA.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -f "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import - akm-standin/debian:bookworm >/dev/null
fi

mkdir -p "$here/build"
"$repo/scripts/setup.sh" >/dev/null
# Without Airflow's own three distributions: the stand-in carries the version docker/Dockerfile
# names (AIRFLOW_VERSION), which pip may not have picked for .venv (it resolves setup.cfg's range).
"$repo/.venv/bin/python" -m pip freeze --exclude-editable \
  | grep -v -E '^apache-airflow(-core|-task-sdk)?==' > "$here/build/constraints.txt"

docker build -q -t "akm-standin/airflow:${airflow_version}-python3.11" \
  --build-arg "AIRFLOW_VERSION=$airflow_version" -f "$here/airflow.Dockerfile" "$here"
docker build -q -t akm-standin/postgres:15 -f "$here/postgres.Dockerfile" "$here"
docker build -q -t akm-standin/redis:7 -f "$here/redis.Dockerfile" "$here"
docker build -q -t akm-standin/s3:moto -f "$here/s3.Dockerfile" "$here"
