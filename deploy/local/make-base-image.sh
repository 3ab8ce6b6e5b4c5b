#!/usr/bin/env bash
# Make the base image the Dockerfile builds on where no registry can be reached: a Debian
# bookworm root file system from debootstrap (Debian's package) with Debian's python3, imported
# into the local Docker engine as parley-base:bookworm. Made once: an image with that tag is
# kept and reused (PARLEY_REBUILD_BASE=1 makes it again).
#
#   bash deploy/local/make-base-image.sh          # then: docker build --build-arg BASE_IMAGE=parley-base:bookworm ...
#
# Needs root (debootstrap) and a Docker engine that answers (`make images` starts one).
# The packages come from the machine's own Debian mirror (PARLEY_DEBIAN_MIRROR to choose another).
set -euo pipefail

TAG=${PARLEY_BASE_IMAGE:-parley-base:bookworm}
SUITE=bookworm
say() { printf 'make-base-image: %s\n' "$*"; }

if [[ ${PARLEY_REBUILD_BASE:-0} != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    say "$TAG is there already ($(docker image inspect -f '{{.Created}}' "$TAG")); PARLEY_REBUILD_BASE=1 makes it again"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    say "debootstrap needs root: run \`sudo bash $0\` (or \`sudo make images\`)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    say "installing Debian's debootstrap with apt-get ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
}

mirror=${PARLEY_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    # The first Debian (not security) URI the machine's apt uses, else Debian's redirector.
    mirror=$(grep -hoE '^(URIs:|deb) *\[?[^]]*\]? *https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | grep -v security | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

root=$(mktemp -d /var/tmp/parley-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
say "debootstrap $SUITE (minbase + python3) from $mirror into $root; a few minutes ..."
# python3-venv: the Dockerfile's builder makes a virtualenv; python-is-python3: `python` in the
# Dockerfile's commands and health checks; ca-certificates: pip reaches PyPI over HTTPS.
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$root" "$mirror"
# Certificate authorities this machine added for itself (a proxy that signs HTTPS on the way out,
# say): without them pip inside `docker build` cannot reach PyPI here.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    say "trusting this machine's own CAs too: $(cd /usr/local/share/ca-certificates && echo *.crt)"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/tmp/* "$root"/root/.cache

say "importing it as $TAG ..."
tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "Debian $SUITE minbase + python3 (deploy/local/make-base-image.sh)" \
    - "$TAG" >/dev/null
say "$TAG: $(docker run --rm --network host "$TAG" python --version) in $(docker image inspect -f '{{.Size}}' "$TAG" | numfmt --to=iec) "
