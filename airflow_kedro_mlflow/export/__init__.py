"""Export time: Kedro project -> manifest (compile) -> DAG file (render) -> ``dags/`` (write).
Never imported by a task.
"""
