#!/usr/bin/env bash
# Make sure nginx is there for the proxy checks of tests/deploy/test_proxy.py: `nginx -t` on
# deploy/proxy/nginx.conf, then a WebSocket, a streamed upload and a streamed download through it.
# Each check starts an nginx of its own (loopback, free ports) and stops it; no system-wide nginx is
# wanted, nor left running.
#
# Found (`nginx` on PATH or /usr/sbin/nginx): nothing to do. Missing and root with apt-get: installs
# Debian's nginx-light without letting the package start its service (which would take port 80).
# Otherwise it says, loudly, that those checks will be skipped and how to get them; it never fails
# `make test`.
set -uo pipefail

say() { printf 'ensure-nginx: %s\n' "$*"; }
# shellcheck source=deploy/local/apt-no-start.sh
source "$(dirname "$0")/apt-no-start.sh"

found() {
    local nginx
    nginx=$(command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }) || return 1
    [[ -n $nginx ]] || return 1
    say "nginx for the proxy checks: $nginx ($("$nginx" -v 2>&1))"
}

found && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "nginx is missing: installing Debian's nginx-light with apt-get (its service not started) ..."
    apt_install_no_start nginx-light
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now nginx.service >/dev/null 2>&1 || true
    fi
    found && exit 0
fi

cat >&2 <<'MSG'
################################################################################
ensure-nginx: NO NGINX: the proxy checks of tests/deploy/test_proxy.py WILL BE
  SKIPPED (deploy/proxy/nginx.conf is then checked by structure only).
  Install it:  sudo apt-get install --no-install-recommends nginx-light
  (on a systemd host: sudo systemctl disable --now nginx), then run `make test` again.
################################################################################
MSG
exit 0
