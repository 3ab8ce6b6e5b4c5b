#!/usr/bin/env bash
# Make sure a Docker engine answers, for `make images` and the container checks
# (tests/deploy/test_images.py, docker-compose.local.yml).
#
# Answers already (`docker info`): nothing to do. Otherwise, as root: installs Debian's docker.io
# (and debootstrap, for the base image) with apt-get when dockerd is missing, and starts
# `dockerd --bridge=none` in the background (log: /var/log/parley-dockerd.log). No bridge: on
# this kind of machine only loopback traffic is allowed, and a bridge's addresses are private-
# range; every Parley container runs with --network host. Not root: says what to start, exit 1.
set -uo pipefail

say() { printf 'ensure-docker: %s\n' "$*"; }
# shellcheck source=deploy/local/apt-no-start.sh
source "$(dirname "$0")/apt-no-start.sh"
answers() { docker info >/dev/null 2>&1; }

if answers; then
    say "Docker engine: $(docker info -f '{{.ServerVersion}} ({{.Driver}})' 2>/dev/null)"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    say "no Docker engine answers, and starting one needs root: \`sudo make images\`, or start dockerd yourself (\`sudo dockerd --bridge=none &\`)" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing Debian's docker.io and debootstrap with apt-get ..."
    apt_install_no_start docker.io debootstrap || { say "apt-get could not install docker.io" >&2; exit 1; }
fi
command -v docker >/dev/null || { say "no docker client after the install" >&2; exit 1; }
say "starting dockerd --bridge=none (log: /var/log/parley-dockerd.log) ..."
setsid nohup dockerd --bridge=none >>/var/log/parley-dockerd.log 2>&1 </dev/null &
for _ in $(seq 60); do
    answers && { say "Docker engine: $(docker info -f '{{.ServerVersion}} ({{.Driver}})')"; exit 0; }
    sleep 0.5
done
say "dockerd did not answer within 30 s; see /var/log/parley-dockerd.log" >&2
exit 1
