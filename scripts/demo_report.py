"""Print what the demo's training runs did (MLflow parent runs, the promotion gate's verdicts)
and where the results are: the objects on the demo's S3.

The S3 endpoint lives only as long as the demo, so its objects are also copied to
.airflow/demo-s3/ for a look afterwards.
"""

import os
import sys
from pathlib import Path

import boto3
from mlflow.tracking import MlflowClient

copy_to = Path(sys.argv[1])
tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
client = MlflowClient(tracking_uri)
experiment = client.get_experiment_by_name("wine_classifier_s3")
trainings = client.search_runs(
    [experiment.experiment_id],
    "tags.`airflow_kedro_mlflow.role` = 'parent' and tags.`kedro.pipeline` = '__default__'",
    order_by=["attributes.start_time DESC"],
    max_results=2,
)
print(f"MLflow tracking store: {tracking_uri}, experiment 'wine_classifier_s3'")
for number, parent in enumerate(reversed(trainings), start=1):
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    print(f"Training {number}: MLflow parent run {parent.info.run_id} ({parent.info.status}) "
          f"with {len(children)} node runs")
    for key, value in sorted(parent.data.metrics.items()):
        print(f"  {key} = {value}")
    promotion = {k: v for k, v in parent.data.tags.items() if k.startswith("promotion.")}
    if promotion:
        decision = promotion["promotion.decision"].replace("not_promoted", "kept out")
        print(f"  Promotion gate: {decision} ({promotion['promotion.reason']}); model "
              f"'{promotion['promotion.registered_model']}' version "
              f"{promotion['promotion.model_version']}")

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["WINE_S3_ENDPOINT_URL"],
    aws_access_key_id=os.environ["WINE_S3_KEY"],
    aws_secret_access_key=os.environ["WINE_S3_SECRET"],
    region_name="us-east-1",
)
print(f"S3 ({os.environ['WINE_S3_ENDPOINT_URL']}), bucket wine-classifier, copied to {copy_to}:")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="wine-classifier"):
    for obj in page.get("Contents", []):
        target = copy_to / obj["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("wine-classifier", obj["Key"], str(target))
        print(f"  s3://wine-classifier/{obj['Key']}  ({obj['Size']} bytes)")
