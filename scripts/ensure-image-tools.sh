#!/usr/bin/env bash
# Installs what `make image-test` needs, with apt-get (root): Debian's Docker engine (dockerd, run privately
# by the test with its own paths and no network changes) and debootstrap (builds the base image, since Docker
# Hub is out of reach). Unlike ensure-test-tools.sh this fails: the image test cannot run without them.
set -euo pipefail
missing=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || missing+=(docker.io)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: make image-test needs ${missing[*]} (install them as root with apt-get)" >&2
  exit 1
fi
echo "installing ${missing[*]} with apt-get…" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
