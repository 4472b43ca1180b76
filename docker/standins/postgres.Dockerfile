# Stand-in for postgres:<version>-bookworm: Debian's PostgreSQL 15 with the official image's
# interface (POSTGRES_USER/PASSWORD/DB, /docker-entrypoint-initdb.d/*.sql on first start, data in
# /var/lib/postgresql/data, password authentication from the network).
FROM akm-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
RUN mkdir -p /docker-entrypoint-initdb.d "$PGDATA" && chown postgres "$PGDATA"
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
