#!/usr/bin/env bash
# Make sure coturn's turnserver is there for the tests that relay through TURN: the call forced
# through TURN in tests/browser/ and the real-coturn check of tests/integration/test_ice_servers.py.
# Each starts a turnserver of its own (loopback, a free port, a secret of its own) and stops it;
# no system-wide TURN server is wanted, nor left running.
#
# Found (`turnserver` on PATH): nothing to do. Missing and root with apt-get: installs Debian's
# `coturn` package without letting it start its service, then makes sure it stays off: on a
# systemd host the package enables and starts coturn.service (which ignores /etc/default/coturn),
# so it is disabled and stopped; elsewhere the init script starts nothing unless
# /etc/default/coturn sets TURNSERVER_ENABLED=1 (commented out as shipped), which is checked.
# Otherwise it says, loudly, that those tests will be skipped and how to get them running; it
# never fails `make test`.
set -uo pipefail

say() { printf 'ensure-coturn: %s\n' "$*"; }
# shellcheck source=deploy/local/apt-no-start.sh
source "$(dirname "$0")/apt-no-start.sh"

found() {
    local server
    server=$(command -v turnserver 2>/dev/null) || return 1
    say "coturn for the TURN tests: $server ($(turnserver --version 2>/dev/null | head -n 1))"
    return 0
}

# The package's own service: off, and not started at boot.
keep_system_service_off() {
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        if systemctl is-enabled --quiet coturn.service 2>/dev/null || systemctl is-active --quiet coturn.service 2>/dev/null; then
            say "disabling and stopping the package's coturn.service (the tests run their own turnserver)"
            systemctl disable --now coturn.service >/dev/null 2>&1 || say "could not disable coturn.service: check 'systemctl status coturn'"
        fi
    fi
    if [[ -f /etc/default/coturn ]] && grep -Eq '^[[:space:]]*TURNSERVER_ENABLED=1' /etc/default/coturn; then
        say "WARNING: /etc/default/coturn sets TURNSERVER_ENABLED=1: the init script will start a system turnserver"
    elif [[ -x /etc/init.d/coturn ]] && [[ ! -d /run/systemd/system ]]; then
        # Stop one that the init script started anyway (its pid file).
        if [[ -s /var/run/turnserver.pid ]] && kill -0 "$(cat /var/run/turnserver.pid)" 2>/dev/null; then
            say "stopping the system turnserver the package's init script started"
            /etc/init.d/coturn stop >/dev/null 2>&1 || true
        fi
    fi
}

found && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "coturn is missing: installing Debian's coturn package with apt-get ..."
    apt_install_no_start coturn
    keep_system_service_off
    found && exit 0
fi

cat >&2 <<'MSG'
################################################################################
ensure-coturn: NO COTURN: the TURN tests WILL BE SKIPPED (the call forced through
  TURN in tests/browser/, the real-coturn check in tests/integration/test_ice_servers.py).
  Install it:  sudo apt-get install --no-install-recommends coturn   (Debian/Ubuntu)
  and, on a systemd host, keep the package's own service off:
               sudo systemctl disable --now coturn
  then run `make test` again.
################################################################################
MSG
exit 0
