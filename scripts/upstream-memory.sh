#!/usr/bin/env bash
# Memory cost of a hostile upstream answer (issue 10, finding 1): the release binary polls a
# mock Bitbucket (python3) that answers normally, then with an 8 MiB `/rest/zdu/cluster` body
# of 170,000 tiny node entries (under the 8 MiB body cap), then normally again. The exporter's
# resident memory (VmRSS, and VmHWM, the peak) is sampled after each phase, and /metrics is
# scraped once per phase. Run twice: with the default node cap (1000: the answer is refused
# with reason too_many_nodes while parsing) and with the cap lifted to 200000 (what the
# exporter did before the cap existed). Prints a table; the figures are in docs/reliability.md.
#
# Usage: scripts/upstream-memory.sh          (builds target/release unless MEM_SKIP_BUILD=1)
# Env:   NODES (170000), PHASE_SECONDS (6), MEM_SKIP_BUILD
# Loopback only; everything it starts is stopped on exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=upstream-memory
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

NODES="${NODES:-170000}"
PHASE_SECONDS="${PHASE_SECONDS:-6}"
BIN=target/release/bitbucket-zdu-exporter
if [ -z "${MEM_SKIP_BUILD:-}" ]; then
  echo "==> cargo build --release" >&2
  cargo build --release --quiet --bin bitbucket-zdu-exporter
fi
[ -x "$BIN" ] || fail "no $BIN"
need_commands curl=curl python3=python3

WORK=$(mktemp -d /tmp/zdu-mem.XXXXXX)
MOCK_PID=""; EXP_PID=""
cleanup() {
  local rc=$?
  set +e
  for p in "$EXP_PID" "$MOCK_PID"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

MOCK_PORT=$(free_port)

cat >"$WORK/mock.py" <<'PY'
import http.server, json, os, sys
port, nodes, mode_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
good = json.dumps({"upgradeModeEnabled": False, "state": "STABLE", "originalVersion": "8.19.0",
    "nodes": [{"id": f"n{i}", "name": f"bitbucket-{i}", "ipAddress": f"10.0.0.{i}", "state": "ACTIVE",
               "tasksTotal": 1, "activeUserCount": 2, "buildNumber": "8019000", "version": "8.19.0",
               "local": i == 0, "portNumber": 5701} for i in range(3)]}).encode()
flood = ('{"state":"STABLE","nodes":[' + ",".join(
    '{"id":"%d","name":"n%d","state":"ACTIVE"}' % (i, i) for i in range(nodes)) + "]}").encode()
state = json.dumps({"state": "STABLE", "buildInfo": {"id": "n0", "name": "bitbucket-0", "state": "ACTIVE"}}).encode()
sys.stderr.write(f"flood body: {len(flood)} bytes, {nodes} entries\n")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        mode = open(mode_file).read().strip()
        body = state if self.path.endswith("/state") else (flood if mode == "flood" else good)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
echo good >"$WORK/mode"
python3 "$WORK/mock.py" "$MOCK_PORT" "$NODES" "$WORK/mode" 2>"$WORK/mock.log" &
MOCK_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$MOCK_PORT/rest/zdu/state" && break; sleep 0.1; done
cat "$WORK/mock.log" >&2

kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
scrape() { # bytes of one /metrics answer
  curl -s "http://127.0.0.1:$1/metrics" | wc -c
}
metric() { # the value of one unlabelled or exact sample
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1==n {print $2}'
}

run() { # max-nodes
  local cap=$1 port
  port=$(free_port)
  echo good >"$WORK/mode"
  "$BIN" --bitbucket.url "http://127.0.0.1:$MOCK_PORT" --poll.interval 1s --bitbucket.timeout 1s \
    --bitbucket.max-nodes "$cap" --web.listen-address "127.0.0.1:$port" --log.level error \
    >"$WORK/exp-$cap.log" 2>&1 &
  EXP_PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/-/ready" && break; sleep 0.1; done
  sleep "$PHASE_SECONDS"
  local base base_scrape
  scrape "$port" >/dev/null
  base=$(kb "$EXP_PID" VmRSS); base_scrape=$(scrape "$port")
  echo flood >"$WORK/mode"
  sleep "$PHASE_SECONDS"
  local flood_scrape flood_rss up reason
  flood_scrape=$(scrape "$port")
  flood_rss=$(kb "$EXP_PID" VmRSS)
  up=$(metric "$port" bitbucket_zdu_up)
  reason=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^bitbucket_zdu_last_error_info{reason="\([a-z_]*\)"}.*/\1/p')
  echo good >"$WORK/mode"
  sleep "$PHASE_SECONDS"
  scrape "$port" >/dev/null
  local after peak
  after=$(kb "$EXP_PID" VmRSS); peak=$(kb "$EXP_PID" VmHWM)
  printf '| %s | %s | %s | %s (%s) | %s | %s | %s | %s |\n' "$cap" "$((base / 1024)) MiB" \
    "$((flood_rss / 1024)) MiB" "${up:-?}" "${reason:-none}" "$((flood_scrape / 1024)) KiB" \
    "$((after / 1024)) MiB" "$((peak / 1024)) MiB" "$((base_scrape / 1024)) KiB"
  kill "$EXP_PID"; wait "$EXP_PID" 2>/dev/null || true; EXP_PID=""
}

echo "| --bitbucket.max-nodes | RSS, normal answers | RSS during the flood | up (reason) | /metrics during the flood | RSS after recovery | peak RSS (VmHWM) | /metrics normally |"
echo "|---|---|---|---|---|---|---|---|"
run 1000
run 200000
