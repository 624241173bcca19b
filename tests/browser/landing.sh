#!/usr/bin/env bash
# The landing page in a real browser: headless Chromium (Debian's package) loads the page of a
# running `demo`, and the rendered DOM must show the version, the target, its status and the
# links, and no secret. A screenshot is left in $OUT_DIR for a human to look at.
set -euo pipefail
cd "$(dirname "$0")/../.."

STEP_PREFIX="landing page"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_commands chromium=chromium curl=curl

BIN="${BIN:-target/debug/bitbucket-zdu-exporter}"
[ -x "$BIN" ] || cargo build --quiet
OUT_DIR="${OUT_DIR:-$(mktemp -d)}"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
"$BIN" demo --web.listen-address "127.0.0.1:$port" --speed 20 --poll.interval 1s >"$work/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null || { cat "$work/demo.log"; echo "FAIL: demo not ready"; exit 1; }

chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --user-data-dir="$work/profile")
timeout 60 "${chrome[@]}" --dump-dom "http://127.0.0.1:$port/" >"$work/dom.html" 2>"$work/chromium.log" || {
  tail -20 "$work/chromium.log"; echo "FAIL: chromium could not load the page"; exit 1; }
timeout 60 "${chrome[@]}" --window-size=1200,700 --screenshot="$OUT_DIR/landing.png" "http://127.0.0.1:$port/" >/dev/null 2>&1 || true

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
fail=0
check() { if grep -q -- "$1" "$work/dom.html"; then echo "ok: page shows $2"; else echo "FAIL: page lacks $2 ($1)"; fail=1; fi; }
check "<h1>Bitbucket ZDU Exporter</h1>" "the title"
check "Version $version" "the version"
check 'href="/metrics"' "the metrics link"
check 'href="/probe?target=demo"' "the probe link of the target"
check '<td class="up">up</td>' "the target up"
check "cluster [A-Z_]* · 3 node entries" "the cluster state and nodes"
check "<h2>Nodes of demo</h2>" "the node table"
check "<td>bitbucket-2</td><td>10.0.0.12:5701</td>" "a node row with its address"
if [ $fail -ne 0 ]; then cat "$work/dom.html"; exit 1; fi
echo "landing page: 8 passed, 0 failed (screenshot: $OUT_DIR/landing.png)"
