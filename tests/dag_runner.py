"""Run one DAG with ``dag.test()`` in a fresh process and write its outcome as JSON.

Each run gets its own interpreter, as each Airflow task process would: no Kedro settings, imported
project modules or MLflow state leak from one DAG run, or from the test process, into another.
The outcome goes to the file RESULT_FILE, not stdout: threads of the run (OpenLineage's emitter,
log handlers) may still write there, into the middle of a printed line.
Usage: python dag_runner.py RESULT_FILE DAG_FILE DAG_ID [CONF_JSON]
"""

import json
import os
import sys
from pathlib import Path


def main() -> None:
    result_file, dag_file, dag_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    conf = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
    if os.environ.get("AKM_POD_STAND_IN"):  # no Kubernetes cluster here: see pod_stand_in.py
        import pod_stand_in

        pod_stand_in.install()
    from airflow_kedro_mlflow.export.dagbag import load_dagbag

    bag = load_dagbag(Path(dag_file))
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    dag_run = bag.dags[dag_id].test(run_conf=conf)

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dag_run.run_id).all()
        states = {ti.task_id: _text(ti.state) for ti in tis}
        xcoms: dict = {}
        for row in session.query(XComModel).filter_by(dag_id=dag_id, run_id=dag_run.run_id):
            xcoms.setdefault(row.task_id, {})[row.key] = row.value
    result = {
        "run_id": dag_run.run_id,
        "state": _text(dag_run.state),
        "tasks": states,
        "xcoms": xcoms,
    }
    partial = result_file.with_suffix(".partial")
    partial.write_text(json.dumps(result, default=str))
    partial.replace(result_file)


def _text(state) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


if __name__ == "__main__":
    main()
