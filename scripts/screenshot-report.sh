#!/usr/bin/env bash
# Renders a tunegate HTML report to a PNG with headless Chromium, so a person (or a session) can
# look at what the report shows without a browser at hand.
#
# usage: scripts/screenshot-report.sh REPORT.html [OUT.png] [WIDTHxHEIGHT]
#   OUT.png defaults to REPORT.png beside the HTML (keep screenshots out of the repository);
#   the window defaults to 1280x2000.
#
# Chromium is installed from Debian's packages when missing (needs root). The page is opened
# with networking features off; tunegate's report loads nothing from outside anyway.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

html=$1
if [[ ! -f "$html" ]]; then
    echo "screenshot-report: no such file: $html" >&2
    exit 2
fi
out=${2:-${html%.html}.png}
size=${3:-1280x2000}
if [[ ! "$size" =~ ^[0-9]+x[0-9]+$ ]]; then
    echo "screenshot-report: size must be WIDTHxHEIGHT, got '$size'" >&2
    exit 2
fi

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        browser=$b
        break
    fi
done
if [[ -z "$browser" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "screenshot-report: chromium is not installed (apt-get install chromium, as root)" >&2
        exit 2
    fi
    echo "screenshot-report: installing chromium" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    browser=chromium
fi

abs_html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
case "$out" in
    /*) abs_out=$out ;;
    *) abs_out=$PWD/$out ;;
esac
mkdir -p "$(dirname "$abs_out")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --force-device-scale-factor=1 \
    --user-data-dir="$profile" --window-size="${size/x/,}" \
    --screenshot="$abs_out" "file://${abs_html// /%20}" >/dev/null 2>"$profile/stderr" || {
    cat "$profile/stderr" >&2
    exit 1
}
if [[ ! -s "$abs_out" ]]; then
    cat "$profile/stderr" >&2
    echo "screenshot-report: chromium wrote no screenshot" >&2
    exit 1
fi
echo "$abs_out"
