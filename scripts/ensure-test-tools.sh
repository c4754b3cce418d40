#!/usr/bin/env bash
# Installs the system tools some tests use, where this machine lets us (root with apt-get):
#   docker-compose  - validates docker-compose.yml without a Docker engine
#   chromium        - the admin console's browser test (Playwright drives Debian's Chromium)
#   gettext         - msgfmt, to check that the compiled zh-Hans catalogue is current
#   fonts-wqy-microhei - a Chinese font, so that the browser test lays out (and screenshots) zh-Hans pages
#   prometheus      - promtool (checks and unit-tests deploy/prometheus/alerts.yml) and the prometheus server
#                     that scrapes the running stack in tests/test_monitoring.py
#   pgbouncer       - the transaction-pooling subset (tests/ha/test_pgbouncer.py, `make test-pgbouncer`)
#   redis-sentinel  - the Redis failover tests (tests/ha/test_sentinel.py, `make test-sentinel`)
#   iproute2        - `ip netns`, veth pairs and a bridge: the hosts of the cluster tests (tests/cluster)
# Never fails the build: where a tool cannot be installed, its tests say so and skip.
set -u
missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v msgfmt >/dev/null 2>&1 || missing+=(gettext)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-microhei)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: cannot install ${missing[*]} (needs root and apt-get); the tests that use them will skip" >&2
  exit 0
fi
echo "installing ${missing[*]} with apt-get…" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/ensure-test-tools.log 2>&1; then
  echo "note: apt-get could not install ${missing[*]} (see /tmp/ensure-test-tools.log); their tests will skip" >&2
fi
exit 0
