#!/usr/bin/env bash
# Print the path of a Prometheus server binary, fetching Debian's `prometheus` package if needed.
#
# A `prometheus` on PATH is used as is. Otherwise the package is fetched with
# `apt-get download` and unpacked (dpkg-deb -x) into ${MMS_CACHE_DIR:-~/.cache/mms}/prometheus/,
# so no system service is installed or started; later runs reuse the unpacked binary.
# Used by tests/integration/test_prometheus.py.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    command -v prometheus
    exit 0
fi
CACHE_DIR="${MMS_CACHE_DIR:-$HOME/.cache/mms}/prometheus"
BIN="$CACHE_DIR/root/usr/bin/prometheus"
if [[ ! -x "$BIN" ]]; then
    mkdir -p "$CACHE_DIR"
    (
        cd "$CACHE_DIR"
        if ! apt-get download -q prometheus >&2; then
            apt-get update -q >&2
            apt-get download -q prometheus >&2
        fi
        deb=$(ls -t prometheus_*.deb | head -n 1)
        rm -rf root.tmp
        dpkg-deb -x "$deb" root.tmp
        rm -rf root && mv root.tmp root
        rm -f "$deb"
    )
fi
echo "$BIN"
