#!/usr/bin/env bash
# The web client's third-party files (services/gateway/web/vendor): libolm compiled to
# WebAssembly (@matrix-org/olm, end-to-end encryption, docs/security.md) and a QR code encoder
# (qrcode-generator, safety numbers), pinned by package.json and package-lock.json (integrity
# hashes: `npm ci` refuses a tarball that differs). Only the files the page loads are copied into
# vendor/dist/, served at /app/vendor/dist/; node_modules/ and dist/ are not committed.
#
# Run by `make web-vendor` (which `make run` and `make test` call) and by the gateway image's
# build (Dockerfile). Without npm it installs Debian's (as root), else fails saying how to get it; the page still works without
# these files, with end-to-end encryption shown as unavailable.
set -euo pipefail

VENDOR="$(cd "$(dirname "$0")/../../services/gateway/web/vendor" && pwd)"
DIST="$VENDOR/dist"
FILES=(
    "node_modules/@matrix-org/olm/olm.js"
    "node_modules/@matrix-org/olm/olm.wasm"
    "node_modules/qrcode-generator/dist/qrcode.mjs"
)

say() { printf 'web-vendor: %s\n' "$*"; }

stamp="$DIST/.lock-sha256"
want="$(sha256sum "$VENDOR/package-lock.json" | cut -d' ' -f1)"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    ok=1
    for file in "${FILES[@]}"; do [[ -f $DIST/$(basename "$file") ]] || ok=0; done
    if [[ $ok == 1 ]]; then
        say "up to date ($DIST)"
        exit 0
    fi
fi

if ! command -v npm >/dev/null 2>&1 && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "npm is missing: installing Debian's npm (apt-get) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >/dev/null || true
fi
if ! command -v npm >/dev/null 2>&1; then
    say "ERROR: npm is not installed, so the web client's olm.js/olm.wasm (end-to-end encryption) cannot be fetched." >&2
    say "Install Node.js and npm (Debian: sudo apt-get install npm), then run 'make web-vendor' again." >&2
    say "(Without them the web client still runs, showing end-to-end encryption as unavailable.)" >&2
    exit 1
fi

say "npm ci in $VENDOR (pinned by package-lock.json) ..."
(cd "$VENDOR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
rm -rf "$DIST"
mkdir -p "$DIST"
for file in "${FILES[@]}"; do
    cp "$VENDOR/$file" "$DIST/"
done
echo "$want" > "$stamp"
say "copied ${#FILES[@]} files into $DIST"
