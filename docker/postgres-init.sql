-- The MLflow tracking server's backend store lives beside Airflow's metadata DB.
CREATE DATABASE mlflow;
