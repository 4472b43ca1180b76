"""Code that runs inside Airflow tasks: imports Kedro, fsspec and the user's project.

Never imported at DAG parse time; operators import it inside ``execute``.
"""
