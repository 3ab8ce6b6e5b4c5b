# The embedded MongoDB-wire server (secantusdb, GPL-2.0, beta) as an image, standing in for
# mongo:7 where no registry can be reached: docker-compose.local.yml runs it, for local
# checks only. Never part of a Parley service image; Parley speaks to it as to any mongod.
#
#   docker build --network host -f deploy/local/mongo-standin.Dockerfile -t parley/mongo-standin:local deploy/local
ARG BASE_IMAGE=parley-base:bookworm
FROM ${BASE_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/secantus \
 && /opt/secantus/bin/pip install 'secantusdb>=0.7.0b3' \
 && groupadd --system --gid 10001 secantus \
 && useradd --system --uid 10001 --gid secantus --home-dir /data --create-home --shell /usr/sbin/nologin secantus \
 && install -d -o secantus -g secantus /data/db
USER 10001:10001
WORKDIR /data
EXPOSE 27017
# Its data lives in /data/db, owned by its user, so a new volume mounted there (the mongo-data
# volume of docker-compose.yml) is that user's too. PARLEY_STANDIN_PORT moves the port.
# --standalone: no oplog, as in `make run` (shared/devstack.py embedded_mongo_argv says why).
ENV PARLEY_STANDIN_PORT=27017
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 \
    CMD ["python", "-c", "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ['PARLEY_STANDIN_PORT'])), 2).close()"]
CMD ["sh", "-c", "exec /opt/secantus/bin/secantusd-py --host 127.0.0.1 --port \"$PARLEY_STANDIN_PORT\" --storage-path /data/db --standalone --log-level WARNING"]
