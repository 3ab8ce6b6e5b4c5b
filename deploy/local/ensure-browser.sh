#!/usr/bin/env bash
# Make sure a Chromium is there for the browser tests (tests/browser/): Debian's `chromium`,
# with a font for Simplified Chinese (the web client's zh-CN pages and screenshots: Debian's
# small `fonts-wqy-microhei`; without one, Chinese shows as boxes but the tests still pass).
#
# Found (PARLEY_CHROMIUM, /usr/bin/chromium, or `chromium` on PATH): nothing to do. Missing
# and root with apt-get: installs Debian's `chromium` package. Otherwise it says, loudly, that
# the browser tests will be skipped and how to get them running; it never fails `make test`.
set -uo pipefail

say() { printf 'ensure-browser: %s\n' "$*"; }

found() {
    for candidate in "${PARLEY_CHROMIUM:-}" /usr/bin/chromium "$(command -v chromium 2>/dev/null)"; do
        if [[ -n $candidate && -x $candidate ]]; then
            say "Chromium for the browser tests: $candidate"
            return 0
        fi
    done
    return 1
}

chinese_font() {
    command -v fc-list >/dev/null && [[ -n $(fc-list :lang=zh 2>/dev/null) ]]
}

ensure_chinese_font() {
    chinese_font && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "no font for Chinese: installing Debian's fonts-wqy-microhei with apt-get ..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-wqy-microhei \
            || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-wqy-microhei; }
    fi
    chinese_font || say "no font for Chinese (fonts-wqy-microhei): zh-CN screenshots will show boxes"
    return 0
}

if found; then
    ensure_chinese_font
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "Chromium is missing: installing Debian's chromium package with apt-get (a few minutes) ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends chromium fonts-noto-color-emoji fonts-wqy-microhei; then
        say "apt-get install failed; refreshing the package lists and trying again ..."
        apt-get update && apt-get install -y --no-install-recommends chromium fonts-noto-color-emoji fonts-wqy-microhei
    fi
    found && exit 0
fi

cat >&2 <<'MSG'
################################################################################
ensure-browser: NO CHROMIUM: the browser tests (tests/browser/) WILL BE SKIPPED.
  Install it:  sudo apt-get install chromium   (Debian/Ubuntu), or
  point PARLEY_CHROMIUM at a Chromium/Chrome binary, then run `make test` again.
################################################################################
MSG
exit 0
