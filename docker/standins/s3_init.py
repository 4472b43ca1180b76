"""Stand-in for minio-init (`mc mb`, `mc admin user add`, `mc admin policy attach`): the bucket,
then the workers' and the MLflow server's keys with docker/minio-policies/*.json."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import boto3

root, password = os.environ["S3_ROOT_USER"], os.environ["S3_ROOT_PASSWORD"]
s3 = boto3.client("s3", endpoint_url="http://minio:9000", aws_access_key_id=root,
                  aws_secret_access_key=password, region_name="us-east-1")
bucket = sys.argv[1]
if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=bucket)
for key_var, secret_var, policy in [("S3_APP_ACCESS_KEY", "S3_APP_SECRET_KEY", "workers.json"),
                                    ("MLFLOW_S3_ACCESS_KEY", "MLFLOW_S3_SECRET_KEY", "mlflow.json")]:
    body = json.dumps({"access_key": os.environ[key_var], "secret_key": os.environ[secret_var],
                       "policy": json.loads((Path("/policies") / policy).read_text())}).encode()
    request = urllib.request.Request("http://minio:9002/", data=body, method="PUT", headers={
        "Authorization": f"Bearer {root}:{password}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30)
    print(f"s3 init: {key_var}'s user has {policy}")
