# One image per Parley service: `docker build --build-arg SERVICE=chat .` (auth, chat, files, gateway).
# Only the runtime dependencies are installed: never the `local` extra (the embedded
# MongoDB-wire server is GPL and for local runs only) nor the `dev` extra.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid parley --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin parley
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Source owned by root and read-only for the service user.
COPY shared ./shared
COPY services ./services

ARG SERVICE=gateway
ENV PARLEY_SERVICE=${SERVICE} \
    PYTHONDONTWRITEBYTECODE=1 \
    PARLEY_GATEWAY_HOST=0.0.0.0

# Numeric uid:gid (= parley:parley) so that runAsNonRoot-style checks can verify it.
USER 10001:10001
EXPOSE 8000

# gateway: GET /healthz; other services have no HTTP port, so only check the process is alive.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD if [ "$PARLEY_SERVICE" = gateway ]; then python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PARLEY_GATEWAY_PORT', '8000'), timeout=4).close()"; else python -c "import os; os.kill(1, 0)"; fi

# exec: the service is PID 1 and receives SIGTERM itself (it drains on SIGTERM).
CMD ["sh", "-c", "exec python -m services.${PARLEY_SERVICE}.main"]
