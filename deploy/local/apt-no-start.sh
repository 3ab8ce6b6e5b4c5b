# Sourced by the ensure-*.sh scripts: `apt_install_no_start PACKAGE...` installs Debian packages
# (no recommends) without letting their services start during the install (invoke-rc.d and
# deb-systemd-invoke ask /usr/sbin/policy-rc.d; an existing policy is left as it is), refreshing
# the package lists once if the first try fails. Returns apt-get's status.
apt_install_no_start() {
    local policy=/usr/sbin/policy-rc.d made=0 status=0
    export DEBIAN_FRONTEND=noninteractive
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# deploy/local/apt-no-start.sh: no service starts while packages are installed\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made=1
    fi
    if ! apt-get install -y --no-install-recommends "$@"; then
        printf 'apt-get install failed; refreshing the package lists and trying again ...\n'
        apt-get update && apt-get install -y --no-install-recommends "$@" || status=$?
    fi
    [[ $made -eq 1 ]] && rm -f "$policy"
    return $status
}
