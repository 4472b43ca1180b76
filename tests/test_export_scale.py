"""A large pipeline exports to a DAG that is exactly the pipeline's dependency graph."""

from __future__ import annotations

from conftest import load_exported_dag, run_kedro

from benchmarks.synthetic import write_synthetic_project


def test_5000_node_pipeline_exports_edge_for_edge(tmp_path):
    project, shape = write_synthetic_project(tmp_path, nodes=5000)
    run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"))
    dag = load_exported_dag(tmp_path / "dags" / "synthetic.py")

    nodes = {t.task_id for t in dag.tasks if t.task_type == "KedroNodeOperator"}
    assert nodes == shape.node_names() and len(nodes) == 5000
    edges = {
        (task.task_id, downstream)
        for task in dag.tasks
        if task.task_id in nodes
        for downstream in task.downstream_task_ids
        if downstream in nodes
    }
    assert edges == shape.dependencies()
    # every first-layer node follows the start task; every last-layer node leads to the end
    start, end = dag.get_task("kedro_run_start"), dag.get_task("kedro_run_end")
    assert {t for t in start.downstream_task_ids if t in nodes} == {
        f"n_0_{c}" for c in range(shape.width)
    }
    assert {t for t in end.upstream_task_ids if t in nodes} == {
        f"n_{shape.layers - 1}_{c}" for c in range(shape.width)
    }
