"""Stand-in for MinIO: moto's S3 API on :9000 with authentication and IAM policies enforced.

MinIO's root credentials (MINIO_ROOT_USER/MINIO_ROOT_PASSWORD) are an IAM user allowed
everything. As `mc admin user add` + `mc admin policy attach` do for MinIO, s3_init.py adds a
user with a chosen key and a policy through a small admin endpoint on :9002 that only the root
credentials open (moto's IAM API cannot take a chosen access key). Nothing is kept on disk.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # before moto reads its settings

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402

ROOT_USER = os.environ["MINIO_ROOT_USER"]
ROOT_PASSWORD = os.environ["MINIO_ROOT_PASSWORD"]
ALLOW_ALL = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
lock = threading.Lock()


# moto (5.2) checks some requests against action names of its own where AWS and MinIO check
# the documented ones (ListObjectsV2 and HeadBucket need s3:ListBucket, HeadObject
# s3:GetObject, CopyObject s3:PutObject, a batch delete s3:DeleteObject): a policy granting or
# denying those grants or denies moto's too.
MOTO_ALIASES = {
    "s3:ListBucket": ["s3:ListObjects", "s3:ListObjectsV2", "s3:HeadBucket"],
    "s3:GetObject": ["s3:HeadObject"],
    "s3:PutObject": ["s3:CopyObject"],
    "s3:DeleteObject": ["s3:DeleteObjects"],
}


def as_moto_policy(policy: dict) -> dict:
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        actions = [*actions, *(alias for action in actions for alias in MOTO_ALIASES.get(action, []))]
        statements.append({**statement, "Action": actions})
    return {**policy, "Statement": statements}


def put_user(access_key: str, secret_key: str, policy: dict) -> None:
    """An IAM user named after its access key, with exactly that key and policy (replaced if
    the user exists, as a second `mc admin user add` does)."""
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
    with lock:
        if access_key not in {user.name for user in backend.list_users("/", None, None)}:
            backend.create_user(region_name="us-east-1", user_name=access_key)
        user = backend.get_user(access_key)
        for key in list(user.access_keys):
            backend.delete_access_key(key.access_key_id, access_key)
        key = backend.create_access_key(access_key)
        backend.access_keys.pop(key.physical_resource_id, None)
        key.access_key_id, key.secret_access_key = access_key, secret_key
        backend.access_keys[key.physical_resource_id] = key
        backend.put_user_policy(access_key, "policy", json.dumps(as_moto_policy(policy)))


class Admin(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(token, f"{ROOT_USER}:{ROOT_PASSWORD}"):
            self.send_error(403, "root credentials required")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        put_user(body["access_key"], body["secret_key"], body["policy"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # no request lines (they would name keys)
        pass


if __name__ == "__main__":
    put_user(ROOT_USER, ROOT_PASSWORD, ALLOW_ALL)
    ThreadedMotoServer(ip_address="0.0.0.0", port=9000, verbose=False).start()
    print("s3 stand-in: S3 API on :9000, admin on :9002", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 9002), Admin).serve_forever()
