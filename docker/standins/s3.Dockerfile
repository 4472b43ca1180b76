# Stand-in for MinIO: moto's S3 server with IAM authentication and authorization enforced (every
# request signed with a known key and allowed by its user's policy), port 9000.
FROM akm-standin/debian:bookworm
COPY build/constraints.txt /opt/standin/constraints.txt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/s3 \
 && /opt/s3/bin/pip install --no-cache-dir --constraint /opt/standin/constraints.txt "moto[server,s3]" boto3
COPY s3_server.py s3_init.py /opt/s3/
ENV PATH=/opt/s3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python", "/opt/s3/s3_server.py"]
