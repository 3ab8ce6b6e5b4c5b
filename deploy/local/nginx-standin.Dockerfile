# nginx for docker-compose.local.yml, where the public nginx image cannot be pulled: Debian's
# nginx-light on the Debian base that make-base-image.sh makes. It runs deploy/proxy/nginx.conf
# (the production file, mounted by docker-compose.yml) with what is about Docker's network
# changed for the host's at start (nginx-on-host-network.py).
#
#   docker build --network host -f deploy/local/nginx-standin.Dockerfile -t parley/nginx-standin:local deploy/local
ARG BASE_IMAGE=parley-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/*
COPY nginx-on-host-network.py /usr/local/lib/nginx-on-host-network.py
ENV PARLEY_LOCAL_HTTP_PORT=8091 \
    PARLEY_LOCAL_GATEWAY_PORT=8090
# SIGQUIT: nginx finishes the requests it holds, then stops.
STOPSIGNAL SIGQUIT
CMD ["python", "/usr/local/lib/nginx-on-host-network.py"]
