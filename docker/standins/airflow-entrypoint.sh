#!/bin/bash
# As the official image's entrypoint does for the commands docker-compose.yaml gives: an Airflow
# subcommand runs as `airflow <command>`; bash, python or a path runs as given.
set -e
case "${1-}" in
  "") exec bash ;;
  bash|sh|python|python3|/*) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
