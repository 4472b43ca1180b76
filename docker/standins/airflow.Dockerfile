# Stand-in for apache/airflow:<version>-python3.11 where no registry is reachable: Debian's
# Python 3.11, Airflow installed as the official image installs it (user airflow, uid 50000,
# a venv on PATH, AIRFLOW_HOME=/opt/airflow, `dumb-init` and an entrypoint that runs `airflow
# <command>` for Airflow's commands and anything else as given).
FROM akm-standin/debian:bookworm
ARG AIRFLOW_VERSION=3.3.2
RUN apt-get update && apt-get install -y --no-install-recommends dumb-init && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \
 && mkdir -p /opt/airflow/logs /opt/airflow/dags /opt/standin && chown -R airflow:0 /opt/airflow
COPY build/constraints.txt /opt/standin/constraints.txt
COPY airflow-entrypoint.sh /entrypoint
ENV AIRFLOW_HOME=/opt/airflow \
    PATH=/home/airflow/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
USER airflow
RUN python3 -m venv /home/airflow/.local \
 && pip install --no-cache-dir --constraint /opt/standin/constraints.txt "apache-airflow==${AIRFLOW_VERSION}"
WORKDIR /opt/airflow
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]
CMD []
