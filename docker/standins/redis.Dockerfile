# Stand-in for redis:<version>-bookworm: Debian's Redis 7.0 (redis-server and redis-cli on PATH).
FROM akm-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
CMD ["redis-server", "--protected-mode", "no"]
