# Bayou container image: the bayou binary (it links only glibc and libgcc_s, both in
# debian:bookworm-slim), the official Faye browser client, a non-root user.
# Build from the repository root:
#
#   docker build -t bayou .
#   docker run --rm -p 8000:8000 -p 9090:9090 -e BAYOU_MOUNTS=/faye bayou
#
# See deploy/README.md for ECS Fargate behind an ALB.
#
# --- io_uring and seccomp ------------------------------------------------------------------
# Docker >= 25, containerd >= 2.0 and ECS Fargate block io_uring (io_uring_setup,
# io_uring_enter, io_uring_register) in their default seccomp profiles. Bayou detects this at
# start-up and runs on epoll there (BAYOU_DRIVER=auto, the default); each worker logs the driver
# it runs. Nothing needs to be configured for that, and Fargate offers no way to change it.
#
# On EC2 (or any host) where you run your own Docker you may allow io_uring:
#   - preferred: a copy of Docker's default seccomp profile with io_uring_setup, io_uring_enter
#     and io_uring_register added to the allowed syscalls, passed with
#     `--security-opt seccomp=/path/to/bayou-seccomp.json`;
#   - or `--security-opt seccomp=unconfined`, which turns off ALL syscall filtering for the
#     container. That widens the kernel attack surface well beyond io_uring (which itself has a
#     long CVE history, the reason runtimes block it); use it only on hosts you trust.
# Then set BAYOU_DRIVER=uring to insist: Bayou refuses to start instead of falling back to epoll.
# On kernels older than 5.12 io_uring rings count against RLIMIT_MEMLOCK; raise it
# (`--ulimit memlock=-1`) if workers fail to set up their rings there.
# ---------------------------------------------------------------------------------------------

# --- build: the bayou binary -------------------------------------------------------------------
# Pinned toolchain: the one this project is developed and tested with. bookworm, so the glibc the
# binary links against is the runtime image's.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The whole context (see .dockerignore: no target/, no node_modules, no .git). Copying the
# context rather than named folders keeps the build working whether or not benches/ exists.
COPY . .
# Thin LTO across crates: simd-json's and httparse's small functions inline into the server,
# which takes about 8% of the instructions from a publish and from a long-poll message
# (callgrind; perf/RESULTS.md, "The structural split in instructions, and thin LTO for the
# image"). Only here: in Cargo.toml's release profile it would also apply to the test suite's
# two dozen binaries, whose build took 7 minutes with it against 2 without on a 2-core
# machine; they test the same code.
RUN CARGO_PROFILE_RELEASE_LTO=thin cargo build --release --locked --bin bayou \
 && install -D -m 0755 target/release/bayou /out/bayou

# --- client: the official Faye browser client (not part of this repository) -------------------
FROM node:20-bookworm-slim AS client
WORKDIR /faye
# npm verifies the tarball against the registry's integrity; the sha512 below additionally pins
# the exact faye 1.4.3 tarball (the same integrity as in tests/node/package-lock.json).
RUN npm pack faye@1.4.3 \
 && echo "3156cf9140d6df56bcb5681d1a9a47ae4b95f3effd7aae6ee53e409eb4bde47539d98272cbdb31d4360663bc512f4bbfb2e724b9cb60c5132e9d35c80ddc514e  faye-1.4.3.tgz" | sha512sum -c - \
 && tar -xzf faye-1.4.3.tgz package/client \
 && test -s package/client/faye-browser-min.js

# --- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# The system's trusted roots, for a rediss:// engine (ElastiCache's certificates chain to them).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Non-root user with a fixed uid/gid (10001), so orchestrators can check runAsNonRoot and the ECS
# task definition can name it ("user": "10001").
RUN groupadd --system --gid 10001 bayou \
 && useradd --system --no-log-init --uid 10001 --gid 10001 \
      --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin bayou
COPY --from=build /out/bayou /usr/local/bin/bayou
COPY --from=client /faye/package/client/ /usr/share/bayou/client/
# The admin listener (/healthz, /readyz) binds all interfaces inside the container so a load
# balancer's target group can reach it; do not publish port 9090 to the internet.
# The operator's console (status page at /, /api/stats) is off in the image: off loopback it
# needs a token. To turn it on, set BAYOU_ADMIN_CONSOLE=true and BAYOU_ADMIN_TOKEN (a secret).
# NO_COLOR: plain log lines (no ANSI colour codes) for CloudWatch and other log drivers.
ENV BAYOU_CLIENT_JS=/usr/share/bayou/client \
    BAYOU_LISTEN=0.0.0.0:8000 \
    BAYOU_ADMIN_LISTEN=0.0.0.0:9090 \
    BAYOU_ADMIN_CONSOLE=false \
    NO_COLOR=1
USER 10001:10001
EXPOSE 8000 9090
# `bayou --health-check` probes the admin /healthz (0.0.0.0 is probed on 127.0.0.1); the image
# needs no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/bayou", "--health-check"]
# SIGTERM (the default stop signal) starts a graceful drain of BAYOU_DRAIN_SECS (default 20 s):
# /readyz turns 503, held long-polls get a retry advice, WebSockets close with 1001 spread over
# the window, then the process exits 0. Give the container a stop timeout above the window
# (`docker stop -t 30`, ECS stopTimeout 30).
ENTRYPOINT ["/usr/local/bin/bayou"]
