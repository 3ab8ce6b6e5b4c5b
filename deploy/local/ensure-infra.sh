#!/usr/bin/env bash
# Make sure RabbitMQ and Redis answer for a local Parley run or test run.
#
# Checks 127.0.0.1:5672 (RabbitMQ) and 127.0.0.1:6379 (Redis), or the host and port of
# PARLEY_AMQP_URL / PARLEY_REDIS_URL when those are set. A missing server is started
# (and installed with apt-get first when running as root) only when it is expected on
# this machine at its default port; anything else is only checked.
set -euo pipefail

AMQP_DEFAULT_PORT=5672
REDIS_DEFAULT_PORT=6379

APT_UPDATED=0

log() { printf '%s\n' "$*"; }
die() { printf 'ensure-infra: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: succeeds when a TCP connection can be made within 2 s.
port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# parse_url URL DEFAULT_PORT: sets URL_SCHEME, URL_HOST and URL_PORT.
parse_url() {
    local url=$1 default_port=$2 rest
    URL_SCHEME=""
    rest=$url
    if [[ $url == *://* ]]; then
        URL_SCHEME=${url%%://*}
        rest=${url#*://}
    fi
    rest=${rest%%/*}      # drop path
    rest=${rest%%\?*}     # drop query
    rest=${rest##*@}      # drop user:password@
    if [[ $rest == \[* ]]; then              # [ipv6]:port
        URL_HOST=${rest#\[}
        URL_HOST=${URL_HOST%%]*}
        rest=${rest#*]}
        URL_PORT=${rest#:}
    elif [[ $rest == *:* ]]; then
        URL_HOST=${rest%%:*}
        URL_PORT=${rest##*:}
    else
        URL_HOST=$rest
        URL_PORT=""
    fi
    [[ -n $URL_HOST ]] || URL_HOST=127.0.0.1
    if [[ -z $URL_PORT ]]; then
        case $URL_SCHEME in
            amqps) URL_PORT=5671 ;;
            *) URL_PORT=$default_port ;;
        esac
    fi
    [[ $URL_PORT =~ ^[0-9]+$ ]] || die "cannot read a port from URL '$url'"
}

is_local_host() {
    case $1 in
        localhost | 127.* | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

# find_bin NAME: prints the path of a server binary (sbin is often not on a user's PATH).
find_bin() {
    local dir
    if command -v "$1" 2>/dev/null; then return 0; fi
    for dir in /usr/sbin /usr/local/sbin /sbin; do
        if [[ -x $dir/$1 ]]; then printf '%s\n' "$dir/$1"; return 0; fi
    done
    return 1
}

# apt_install PACKAGE: installs with apt-get when running as root; fails otherwise.
apt_install() {
    [[ $(id -u) -eq 0 ]] || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "running apt-get update ..."
        apt-get update
        APT_UPDATED=1
    fi
    log "installing $1 with apt-get ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$1"
}

# wait_for NAME HOST PORT SECONDS: waits for the port, printing a dot every 2 s.
wait_for() {
    local name=$1 host=$2 port=$3 limit=$4 start=$SECONDS
    printf '%s: waiting for %s:%s ' "$name" "$host" "$port"
    until port_open "$host" "$port"; do
        if (( SECONDS - start >= limit )); then
            printf '\n'
            return 1
        fi
        sleep 2
        printf '.'
    done
    printf '\n'
}

start_rabbitmq() { "$1" -detached; }
start_redis() { "$1" --daemonize yes --bind 127.0.0.1 --port "$REDIS_DEFAULT_PORT" --save "" --appendonly no; }

# ensure NAME ENV_VAR DEFAULT_URL DEFAULT_PORT BINARY APT_PACKAGE WAIT_SECONDS
ensure() {
    local name=$1 var=$2 default_url=$3 default_port=$4 bin_name=$5 package=$6 wait_s=$7
    local url=${!var:-$default_url} bin
    if [[ $url == unix://* ]]; then
        local sock=${url#unix://}
        sock=${sock%%\?*}
        [[ -S $sock ]] || die "$name is not reachable at unix socket $sock (from $var)"
        log "$name: up at $sock"
        return 0
    fi
    parse_url "$url" "$default_port"
    local host=$URL_HOST port=$URL_PORT

    if port_open "$host" "$port"; then
        log "$name: up at $host:$port"
        return 0
    fi

    if ! is_local_host "$host" || [[ $port != "$default_port" ]]; then
        die "$name is not reachable at $host:$port (from $var); not starting anything for a non-default address - start it yourself or fix $var"
    fi

    log "$name: nothing answers on $host:$port"
    if ! bin=$(find_bin "$bin_name"); then
        if ! apt_install "$package"; then
            die "$name is not running and $bin_name is not installed. Install the '$package' package (e.g. 'sudo apt-get install $package'), start it on $host:$port, or rerun as root to let this script do it."
        fi
        bin=$(find_bin "$bin_name") || die "$bin_name still not found after installing $package"
        # The package's install scripts may have started the service already.
        if port_open "$host" "$port"; then
            log "$name: up at $host:$port"
            return 0
        fi
    fi

    log "$name: starting $bin ..."
    "start_$name" "$bin" || die "'$bin' failed to start $name; start it yourself so that it listens on $host:$port"
    wait_for "$name" "$host" "$port" "$wait_s" \
        || die "$name did not come up on $host:$port within ${wait_s}s"
    log "$name: up at $host:$port"
}

ensure rabbitmq PARLEY_AMQP_URL "amqp://guest:guest@127.0.0.1:$AMQP_DEFAULT_PORT/" \
    "$AMQP_DEFAULT_PORT" rabbitmq-server rabbitmq-server 90
ensure redis PARLEY_REDIS_URL "redis://127.0.0.1:$REDIS_DEFAULT_PORT/0" \
    "$REDIS_DEFAULT_PORT" redis-server redis-server 15
