"""mlflow-init of docker-compose.yaml: the workers' MLflow user, created by MLflow's admin (or
its password set again, so a changed .env takes effect). Standard library only; the passwords
come from the environment and are never printed."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request

SERVER = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
ADMIN = f"{os.environ['MLFLOW_ADMIN_USER']}:{os.environ['MLFLOW_ADMIN_PASSWORD']}"
USER, PASSWORD = os.environ["MLFLOW_WORKERS_USER"], os.environ["MLFLOW_WORKERS_PASSWORD"]


def call(method: str, path: str, body: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"{SERVER}/api/2.0/mlflow/users/{path}", data=json.dumps(body).encode(), method=method,
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(ADMIN.encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main() -> int:
    if USER == os.environ["MLFLOW_ADMIN_USER"]:
        print("mlflow-init: MLFLOW_WORKERS_USER must not be MLflow's admin", file=sys.stderr)
        return 1
    created = call("POST", "create", {"username": USER, "password": PASSWORD})
    if created == 200:
        print(f"mlflow-init: created the workers' user {USER}")
        return 0
    if created == 401:
        print("mlflow-init: MLflow refused the admin's login (MLFLOW_ADMIN_USER/PASSWORD: the admin "
              "is created at MLflow's first start; change its password through MLflow's API)",
              file=sys.stderr)
        return 1
    updated = call("PATCH", "update-password", {"username": USER, "password": PASSWORD})
    if updated != 200:
        print(f"mlflow-init: could not create the user {USER} (HTTP {created}) nor set its "
              f"password (HTTP {updated})", file=sys.stderr)
        return 1
    print(f"mlflow-init: the workers' user {USER} exists; its password is the one of .env")
    return 0


if __name__ == "__main__":
    sys.exit(main())
