# Stand-in for redis:<version>-bookworm: Debian's Redis 7.0 (redis-server and redis-cli on PATH).
FROM akm-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
# As the official image: data in /data, owned by the redis user
WORKDIR /data
CMD ["redis-server", "--protected-mode", "no"]
