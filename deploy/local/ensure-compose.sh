#!/usr/bin/env bash
# Make sure a Compose implementation is there for tests/deploy/test_compose.py, which runs
# `docker-compose config -q` (or `docker compose config -q`) on docker-compose.yml. That parses,
# merges and interpolates the file the way Compose does; it needs no Docker daemon.
#
# Found (`docker-compose`, or the `docker compose` plugin): nothing to do. Missing and root with
# apt-get: installs Debian's `docker-compose` package (1.29, without the Docker engine it only
# recommends). Otherwise it says, loudly, that the check will be skipped and how to get it
# running; it never fails `make test`.
set -uo pipefail

say() { printf 'ensure-compose: %s\n' "$*"; }

found() {
    if command -v docker-compose >/dev/null 2>&1; then
        say "Compose for the deployment checks: $(command -v docker-compose)"
        return 0
    fi
    if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
        say "Compose for the deployment checks: docker compose ($(docker compose version --short 2>/dev/null))"
        return 0
    fi
    return 1
}

found && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "no docker-compose: installing Debian's docker-compose package with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends docker-compose; then
        say "apt-get install failed; refreshing the package lists and trying again ..."
        apt-get update && apt-get install -y --no-install-recommends docker-compose
    fi
    found && exit 0
fi

cat >&2 <<'MSG'
################################################################################
ensure-compose: NO DOCKER-COMPOSE: `docker-compose config` on docker-compose.yml
  WILL BE SKIPPED (tests/deploy/test_compose.py; its structural checks still run).
  Install it:  sudo apt-get install --no-install-recommends docker-compose
  (Debian/Ubuntu), or the Docker Compose plugin, then run `make test` again.
################################################################################
MSG
exit 0
