# syntax=docker/dockerfile:1
# ringkvd and the ringkv CLI in a slim Debian image. Build: `docker build -t ringkv .`;
# a local 3-node cluster: `docker compose up` (compose.yaml); Kubernetes: dist/kubernetes/.
# The entrypoint (dist/container/entrypoint.sh) starts ringkvd, founds or joins the cluster
# as RINGKV_FOUNDERS and RINGKV_JOIN say, and logs when the node is ready.

# --- build: release binaries of ringkvd and ringkv (RocksDB's C++ needs clang and g++) ---
FROM rust:1-bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libclang-dev g++ pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and the target directory are BuildKit caches: a change to our code does not
# compile RocksDB again (15+ minutes on two cores).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ringkv-server -p ringkv-cli \
 && install -m 0755 target/release/ringkvd target/release/ringkv /usr/local/bin/

# --- runtime ---
FROM debian:bookworm-slim
# curl: the health check and the entrypoint's readiness wait ask the admin port's /ready.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ringkv \
 && useradd --system --uid 10001 --gid ringkv --home-dir /var/lib/ringkvd --shell /usr/sbin/nologin ringkv \
 && mkdir -p /var/lib/ringkvd \
 && chown ringkv:ringkv /var/lib/ringkvd
COPY --from=build /usr/local/bin/ringkvd /usr/local/bin/ringkv /usr/local/bin/
COPY dist/container/entrypoint.sh /usr/local/bin/ringkv-entrypoint
USER ringkv:ringkv
WORKDIR /var/lib/ringkvd
# Data and checkpoints on a volume; listen on every interface (set RINGKVD_ADVERTISE to the
# address the others reach this node at), the admin port too (keep it off public networks:
# its GETs are not authenticated).
ENV RINGKVD_LISTEN=0.0.0.0:7400 \
    RINGKVD_ADMIN_LISTEN=0.0.0.0:9400 \
    RINGKVD_DATA_DIR=/var/lib/ringkvd/data \
    RINGKVD_STORAGE__CHECKPOINT_DIR=/var/lib/ringkvd/checkpoints \
    RINGKVD_LOG_FORMAT=json
VOLUME ["/var/lib/ringkvd"]
# 7400: clients and peers (TCP) and gossip (UDP); 9400: /health, /ready, /metrics, /checkpoint.
EXPOSE 7400/tcp 7400/udp 9400/tcp
# Healthy: a member of the cluster with its quorum alive (on the admin port in force).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS --max-time 2 "http://127.0.0.1:${RINGKVD_ADMIN_LISTEN##*:}/ready" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ringkv-entrypoint"]
