#!/bin/sh
# Makes sure Debian's Chromium is installed for the browser tests (tests/browser), where that is possible.
#
# Called by `make test`. Quiet and idempotent: nothing happens when /usr/bin/chromium exists. It installs only
# as root on a machine with apt-get, and it never fails the build: if Chromium cannot be installed it prints a
# note, and the browser tests skip with a reason that says so.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

note() {
    echo "ensure-browser: $1; the browser tests (tests/browser) will be skipped." >&2
    exit 0
}

[ "$(id -u)" -eq 0 ] || note "$CHROMIUM is missing and installing it needs root (apt-get install chromium)"
command -v apt-get >/dev/null 2>&1 || note "$CHROMIUM is missing and there is no apt-get to install it with"

echo "ensure-browser: installing chromium with apt-get..." >&2
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; then
    [ -x "$CHROMIUM" ] || note "apt-get installed chromium but $CHROMIUM is not there"
    echo "ensure-browser: chromium installed." >&2
else
    note "apt-get could not install chromium"
fi
exit 0
