#!/usr/bin/env bash
# Build Parley's service images and the MongoDB-wire stand-in on this machine, from the
# Debian base made by make-base-image.sh (no registry needed; PyPI is):
#   parley/{auth,chat,files,calls,push,gateway}:${PARLEY_TAG:-local}, parley/mongo-standin:local and
#   parley/nginx-standin:local (for deploy/local/docker-compose.local.yml).
# Builds use the host's network (no bridge here). `make images` runs ensure-docker.sh first.
set -euo pipefail
cd "$(dirname "$0")/../.."

TAG=${PARLEY_TAG:-local}
BASE=${PARLEY_BASE_IMAGE:-parley-base:bookworm}
say() { printf 'build-images: %s\n' "$*"; }
# The legacy builder (Debian's docker.io has no buildx) warns that it is deprecated, every time.
build() { docker build --quiet --network host --build-arg BASE_IMAGE="$BASE" "$@" 2> >(grep -v -e DEPRECATED -e buildx -e '^ *$' >&2) >/dev/null; }

bash deploy/local/make-base-image.sh
for service in auth chat files calls push gateway; do
    say "parley/$service:$TAG (Dockerfile, target $service, FROM $BASE) ..."
    build --target "$service" -t "parley/$service:$TAG" .
done
say "parley/mongo-standin:local (deploy/local/mongo-standin.Dockerfile) ..."
build -f deploy/local/mongo-standin.Dockerfile -t parley/mongo-standin:local deploy/local
say "parley/nginx-standin:local (deploy/local/nginx-standin.Dockerfile) ..."
build -f deploy/local/nginx-standin.Dockerfile -t parley/nginx-standin:local deploy/local
for image in parley/auth:"$TAG" parley/chat:"$TAG" parley/files:"$TAG" parley/calls:"$TAG" parley/push:"$TAG" parley/gateway:"$TAG" parley/mongo-standin:local parley/nginx-standin:local; do
    say "  $image  $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec)"
done
