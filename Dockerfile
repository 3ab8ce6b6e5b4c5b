# Parley images: one multi-stage file, one final stage per service.
#
#   docker build --target auth    -t parley/auth    .
#   docker build --target chat    -t parley/chat    .
#   docker build --target files   -t parley/files   .
#   docker build --target calls   -t parley/calls   .
#   docker build --target push    -t parley/push    .
#   docker build --target gateway -t parley/gateway .    (also the default: the last stage)
#
# docker-compose.yml builds the same targets (`build.target`); deploy/k8s/ runs these images.
# Only the runtime dependencies are installed: never the `local` extra (the embedded
# MongoDB-wire server is GPL and for local runs only) nor the `dev` extra.

# The base: any image with Python 3.11+ as `python` (with venv) and groupadd/useradd. The public
# python:3.11-slim by default; where no registry can be reached, the Debian bookworm base made
# by deploy/local/make-base-image.sh (`make images` builds with
# --build-arg BASE_IMAGE=parley-base:bookworm).
ARG BASE_IMAGE=python:3.11-slim

# --- builder: the dependencies in a virtualenv ---------------------------------------------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
# `pip install .` (no extras) resolves the dependencies from pyproject.toml; the project itself
# is then uninstalled again, so that its code exists once in the image, in /app (below).
RUN pip install . \
 && pip uninstall --yes parley

# --- web-vendor: the web client's pinned npm files (olm.js, olm.wasm, the QR encoder) -----------
# npm from Debian's packages, `npm ci` from services/gateway/web/vendor/package-lock.json
# (integrity-checked), the served files copied into vendor/dist (deploy/local/web-vendor.sh).
FROM ${BASE_IMAGE} AS web-vendor
RUN apt-get update \
 && apt-get install --yes --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY deploy/local/web-vendor.sh ./deploy/local/web-vendor.sh
COPY services/gateway/web/vendor/package.json services/gateway/web/vendor/package-lock.json ./services/gateway/web/vendor/
RUN bash deploy/local/web-vendor.sh

# --- runtime: what every service image shares ----------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid parley --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin parley
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Source (and services/gateway/web, the web client) owned by root, read-only for the service
# user; compiled here so that a read-only root filesystem costs nothing at start-up.
COPY shared ./shared
COPY services ./services
RUN python -m compileall -q /app
# Numeric uid:gid (= parley:parley) so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# auth, chat, files, calls and push have no HTTP API: they serve Prometheus /metrics on
# PARLEY_METRICS_PORT (shared/metrics.py), and their health check is that this endpoint answers.
# It shows that the process is up (the endpoint starts first and dies with it), not that MongoDB
# or RabbitMQ are reachable. With PARLEY_METRICS_PORT=0 (metrics off) the check only passes: the
# service is PID 1, so a running container is a running service. Each service's CMD is in exec
# form: the service is PID 1 and gets SIGTERM itself (it stops consuming and lets the commands in
# flight finish, within PARLEY_SHUTDOWN_TIMEOUT_SECONDS, 20 s by default: give it a stop timeout
# above that).

# --- auth ---------------------------------------------------------------------------------------
FROM runtime AS auth
ENV PARLEY_METRICS_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = int(os.environ.get('PARLEY_METRICS_PORT') or 0); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=4).close()"]
CMD ["python", "-m", "services.auth.main"]

# --- chat ---------------------------------------------------------------------------------------
FROM runtime AS chat
ENV PARLEY_METRICS_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = int(os.environ.get('PARLEY_METRICS_PORT') or 0); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=4).close()"]
CMD ["python", "-m", "services.chat.main"]

# --- files --------------------------------------------------------------------------------------
FROM runtime AS files
ENV PARLEY_METRICS_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = int(os.environ.get('PARLEY_METRICS_PORT') or 0); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=4).close()"]
CMD ["python", "-m", "services.files.main"]

# --- calls --------------------------------------------------------------------------------------
# Call signalling; its state is in Redis (no MongoDB), the calls' messages are chat's to store.
FROM runtime AS calls
ENV PARLEY_METRICS_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = int(os.environ.get('PARLEY_METRICS_PORT') or 0); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=4).close()"]
CMD ["python", "-m", "services.calls.main"]

# --- push ---------------------------------------------------------------------------------------
# Offline push: notifications through Web Push, FCM and APNs for devices that are away.
FROM runtime AS push
ENV PARLEY_METRICS_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = int(os.environ.get('PARLEY_METRICS_PORT') or 0); p and urllib.request.urlopen(f'http://127.0.0.1:{p}/metrics', timeout=4).close()"]
CMD ["python", "-m", "services.push.main"]

# --- gateway (last: the default target) ---------------------------------------------------------
# HTTP and WebSocket on 8000, its own /metrics there too. The health check is GET /healthz (the
# process answers HTTP); /readyz, which also asks RabbitMQ, Redis and the services, is for load
# balancers and Kubernetes' readiness probe. On SIGTERM the gateway drains: it refuses new
# sockets, answers the requests in flight, closes every WebSocket with 1012 (service restart:
# clients reconnect to another gateway and resync), and finishes HTTP requests (up to 10 s).
FROM runtime AS gateway
COPY --from=web-vendor /src/services/gateway/web/vendor/dist ./services/gateway/web/vendor/dist
ENV PARLEY_GATEWAY_HOST=0.0.0.0 \
    PARLEY_GATEWAY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PARLEY_GATEWAY_PORT', '8000'), timeout=4).close()"]
CMD ["python", "-m", "services.gateway.main"]
