#!/usr/bin/env bash
# Screenshots a page of a running `tunegate registry serve` with headless Chromium, so a person
# (or a session) can look at the models, a version's evidence chain, or the audit log.
#
# usage: scripts/screenshot-registry.sh URL OUT.png [WIDTHxHEIGHT]
#   e.g. scripts/screenshot-registry.sh http://127.0.0.1:8470/models/llama-lora/versions/1 /tmp/v1.png
#   The window defaults to 1280x1100. Keep screenshots out of the repository.
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
url=$1
out=$2
size=${3:-1280x1100}
[[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || { echo "screenshot-registry: size must be WIDTHxHEIGHT" >&2; exit 2; }
case "$url" in
    http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;;
    *) echo "screenshot-registry: only loopback URLs (the registry you started)" >&2; exit 2 ;;
esac
browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
[[ -n "$browser" ]] || { echo "screenshot-registry: chromium is not installed (apt-get install chromium)" >&2; exit 2; }
case "$out" in /*) abs_out=$out ;; *) abs_out=$PWD/$out ;; esac
mkdir -p "$(dirname "$abs_out")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --force-device-scale-factor=1 \
    --user-data-dir="$profile" --window-size="${size/x/,}" \
    --screenshot="$abs_out" "$url" >/dev/null 2>"$profile/stderr" || { cat "$profile/stderr" >&2; exit 1; }
[[ -s "$abs_out" ]] || { cat "$profile/stderr" >&2; echo "screenshot-registry: no screenshot written" >&2; exit 1; }
echo "$abs_out"
