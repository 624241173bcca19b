#!/usr/bin/env bash
# The live upgrade page (/upgrade) in a real browser: headless Chromium (Debian's package)
# renders the page of a running `demo` during a simulated rolling upgrade and after it, with
# JavaScript on and off, and the rendered DOM must show the progress, one timeline lane per
# node, the next node to stop and, afterwards, a history row. Screenshots are kept in
# $OUT_DIR (default target/browser-artifacts) as test artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."

STEP_PREFIX="upgrade page"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_commands chromium=chromium curl=curl
need_python_modules websocket=python3-websocket=websocket-client
command -v curl >/dev/null 2>&1 || { echo "FAIL: curl is not installed"; exit 1; }

BIN="${BIN:-target/debug/bitbucket-zdu-exporter}"
[ -x "$BIN" ] || cargo build --quiet
OUT_DIR="${OUT_DIR:-target/browser-artifacts}"
mkdir -p "$OUT_DIR"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
base="http://127.0.0.1:$port"
"$BIN" demo --web.listen-address "127.0.0.1:$port" --speed 10 --poll.interval 1s >"$work/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "$base/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "$base/-/ready" >/dev/null || { cat "$work/demo.log"; echo "FAIL: demo not ready"; exit 1; }

# Waits (up to $2 s) until the JSON API of the demo target satisfies the python expression $1
# (over `v`, the decoded /api/v1/targets/demo/upgrade).
wait_api() {
  local expr="$1" limit="$2"
  for _ in $(seq 1 $((limit * 5))); do
    if curl -fs "$base/api/v1/targets/demo/upgrade" | python3 -c "import json,sys; v=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "FAIL: timed out waiting for: $expr"; exit 1
}

fail=0
passed=0
check() { # file pattern what
  if grep -Eq -- "$2" "$1"; then echo "ok: $3"; passed=$((passed + 1)); else echo "FAIL: $3 ($2)"; fail=1; fi
}
# render NAME [--no-js] [--wait-refresh S]: the page as Chromium renders it, DOM in
# $work/NAME.html, screenshot in $OUT_DIR/upgrade-NAME.png (through DevTools, since
# --dump-dom needs page scripts).
render() {
  local name="$1"; shift
  local dport
  dport=$(free_port)
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile-$name" --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port="$dport" about:blank >>"$work/chromium.log" 2>&1 &
  local cpid=$!
  if ! timeout 90 python3 tests/browser/cdp.py "$dport" "$base/upgrade" "$work/$name.html" "$OUT_DIR/upgrade-$name.png" "$@"; then
    kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
    tail -20 "$work/chromium.log"; echo "FAIL: chromium could not render the page"; exit 1
  fi
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  [ -s "$OUT_DIR/upgrade-$name.png" ] || { echo "FAIL: no screenshot $name"; fail=1; }
}
lanes() { grep -o '<g class="lane"' "$1" | wc -l || true; }

# During the upgrade: one node done, so an ETA, and a next node on the old version.
wait_api 'v["upgrade"] is not None and v["upgrade"]["nodes_done"] >= 1 and v["next_node"] is not None' 90
for mode in during during-nojs; do
  if [ "$mode" = during-nojs ]; then render "$mode" --no-js; else render "$mode" --wait-refresh 6; fi
  f="$work/$mode.html"
  check "$f" '<progress max="3" value="[1-3]">' "$mode: the progress bar (N of 3)"
  check "$f" '<strong>[1-3] of 3</strong> nodes on the new version' "$mode: the progress text"
  n=$(lanes "$f")
  if [ "$n" -eq 3 ]; then echo "ok: $mode: three timeline lanes"; passed=$((passed + 1)); else echo "FAIL: $mode: $n timeline lanes"; fail=1; fi
  check "$f" '<rect class="phase" data-state="(DRAINING|TERMINATING|OFFLINE|STARTING|ACTIVE)"' "$mode: coloured phases"
  check "$f" 'class="next-node"[^>]*>Next node to stop' "$mode: the next node"
  check "$f" 'ETA <span class="eta">[0-9]{4}-' "$mode: the ETA"
  check "$f" 'data-state="(READY_TO_UPGRADE|MIXED|READY_TO_RUN_UPGRADE_TASKS)"' "$mode: the cluster state"
done
check "$work/during.html" '<body data-refreshed="[0-9]+"' "with JavaScript the page refreshed itself in place"
if grep -q '<body data-refreshed' "$work/during-nojs.html"; then echo "FAIL: scripts ran with JavaScript disabled"; fail=1; else echo "ok: no script ran with JavaScript disabled"; passed=$((passed + 1)); fi

# After it: back to STABLE, the history has a completed row.
wait_api 'v["upgrade"] is None and v["results"]["completed"] >= 1' 120
for mode in after after-nojs; do
  if [ "$mode" = after-nojs ]; then render "$mode" --no-js; else render "$mode"; fi
  f="$work/$mode.html"
  check "$f" '<tr class="history-row" data-result="completed">' "$mode: a completed history row"
  check "$f" 'class="no-upgrade"' "$mode: no upgrade in flight"
  check "$f" '<li data-action="cancel" class="not-allowed">' "$mode: the actions list"
  if grep -q '<progress' "$f"; then echo "FAIL: $mode: a progress bar after the upgrade"; fail=1; else passed=$((passed + 1)); fi
done
if [ $fail -ne 0 ]; then
  for f in "$work"/*.html; do echo "== $f"; cat "$f"; done
  exit 1
fi
echo "upgrade page: $passed passed, 0 failed (screenshots: $OUT_DIR/upgrade-*.png)"
