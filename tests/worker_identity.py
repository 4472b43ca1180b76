"""``[core] hostname_callable`` of the test clusters: each Celery worker reports its own name
(``AKM_WORKER_NAME``), so task instances show which worker ran them although all run here."""

import os
import socket


def hostname() -> str:
    return os.environ.get("AKM_WORKER_NAME") or socket.getfqdn()
