#!/usr/bin/env bash
# Soak test (issue 4, part 6): a bounded run of the release binary with short intervals —
# thousands of polls and scrapes across scenario changes and upstream faults — sampling the
# exporter's resident memory and open file descriptors, then a verdict: the last third of the
# samples must stay within a bound of the first third (no growth).
#
# Usage: scripts/soak.sh                 ~3 minutes
#        SOAK_SECONDS=1800 scripts/soak.sh
# Env:   SOAK_SECONDS (180), SAMPLE_EVERY (5 s), POLL_INTERVAL (100ms),
#        RSS_SLACK_KB (4096) and RSS_RATIO (1.20): last-third mean RSS <= first-third mean * ratio + slack
#        FD_SLACK (8): last-third max fds <= first-third max + slack
#        SOAK_SKIP_BUILD=1 to use an existing target/release binary
# Loopback only; everything it starts is stopped on exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=soak
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SOAK_SECONDS="${SOAK_SECONDS:-180}"
SAMPLE_EVERY="${SAMPLE_EVERY:-5}"
POLL_INTERVAL="${POLL_INTERVAL:-100ms}"
RSS_SLACK_KB="${RSS_SLACK_KB:-4096}"
RSS_RATIO="${RSS_RATIO:-1.20}"
FD_SLACK="${FD_SLACK:-8}"
BIN=target/release/bitbucket-zdu-exporter

if [ -z "${SOAK_SKIP_BUILD:-}" ]; then
  echo "==> cargo build --release"
  cargo build --release --quiet
fi
[ -x "$BIN" ] || { echo "no $BIN"; exit 1; }
command -v curl >/dev/null || { echo "curl is needed"; exit 1; }

WORK=$(mktemp -d /tmp/zdu-soak.XXXXXX)
SIM_PID=""; EXP_PID=""; SCRAPER_PIDS=()
cleanup() {
  local rc=$?
  set +e
  for p in "${SCRAPER_PIDS[@]}" "$EXP_PID" "$SIM_PID"; do
    [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; [ -n "$p" ] && kill "$p" 2>/dev/null
  done
  wait 2>/dev/null
  # A scraper's last curl may still be finishing: retry the removal briefly.
  for _ in 1 2 3 4 5; do rm -rf "$WORK" 2>/dev/null && break; sleep 1; done
  exit "$rc"
}
trap cleanup EXIT INT TERM

SIM_PORT=$(free_port)
EXP_PORT=$(free_port)
EXP="http://127.0.0.1:$EXP_PORT"
printf 'soak-pw-%s\n' "$RANDOM$RANDOM" > "$WORK/sim.pw"
cp "$WORK/sim.pw" "$WORK/exp.pw"

start_sim() { # scenario
  "$BIN" --log.level=warn simulate --web.listen-address "127.0.0.1:$SIM_PORT" --scenario "$1" --speed 50 \
    --nodes 4 --username zdu --password-file "$WORK/sim.pw" >>"$WORK/sim.log" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$SIM_PORT/" && return 0
    sleep 0.1
  done
  echo "simulator did not start"; cat "$WORK/sim.log"; exit 1
}
stop_sim() { if [ -n "$SIM_PID" ]; then kill -CONT "$SIM_PID" 2>/dev/null || true; kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""; fi; }

start_sim stable
"$BIN" --bitbucket.url "http://127.0.0.1:$SIM_PORT" --bitbucket.username zdu \
  --bitbucket.password-file "$WORK/exp.pw" --web.listen-address "127.0.0.1:$EXP_PORT" \
  --poll.interval "$POLL_INTERVAL" --bitbucket.timeout "$POLL_INTERVAL" --poll.max-age 2s \
  --log.level=info >"$WORK/exporter.log" 2>&1 &
EXP_PID=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "$EXP/-/ready" && break; sleep 0.1; done
curl -sf -o /dev/null "$EXP/-/ready" || { echo "exporter not ready"; cat "$WORK/exporter.log"; exit 1; }

# Scrapers: two loops, each request batch on one keep-alive connection; counts in files.
scraper() { # id
  local n=0 urls=()
  for _ in $(seq 1 10); do urls+=("$EXP/metrics" "$EXP/probe?target=default"); done
  urls+=("$EXP/" "$EXP/-/healthy" "$EXP/-/ready")
  while :; do
    curl -s -H 'Accept: application/openmetrics-text;version=1.0.0' "${urls[@]}" >/dev/null || true
    n=$((n + ${#urls[@]})); echo "$n" >"$WORK/scrapes.$1.tmp"; mv -f "$WORK/scrapes.$1.tmp" "$WORK/scrapes.$1"
    sleep 0.05
  done
}
scraper 1 & SCRAPER_PIDS+=($!)
scraper 2 & SCRAPER_PIDS+=($!)

metric() { # name -> value summed over series (from one scrape)
  curl -s "$EXP/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s+=$2} END {print s+0}'
}
sample() { # phase
  local rss fds polls errs scrapes
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$EXP_PID/status")
  fds=$(find "/proc/$EXP_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
  polls=$(metric bitbucket_zdu_polls_total)
  errs=$(metric bitbucket_zdu_poll_errors_total)
  local s1 s2
  s1=$(cat "$WORK/scrapes.1" 2>/dev/null || true); s2=$(cat "$WORK/scrapes.2" 2>/dev/null || true)
  [[ "$s1" =~ ^[0-9]+$ ]] || s1=0; [[ "$s2" =~ ^[0-9]+$ ]] || s2=0
  scrapes=$(( s1 + s2 ))
  printf '%6s %8s %5s %8s %8s %9s  %s\n' "$(( $(date +%s) - T0 ))" "$rss" "$fds" "$polls" "$errs" "$scrapes" "$1" | tee -a "$WORK/samples"
}

# Phases, in a loop until the time is up: scenario changes and faults.
PHASES=(
  "stable"                         # baseline
  "scenario rolling-upgrade"       # every cluster state, nodes come and go
  "kill"                           # simulator gone: connect errors
  "scenario ghost-nodes"           # OFFLINE ghosts appear and vanish
  "wrong-password"                 # 401s, then the file is restored (rotation without restart)
  "hang"                           # simulator SIGSTOPped: accepts, never answers -> timeouts
  "scenario node-error"
  "scenario not-clustered"         # not_clustered
  "scenario stuck-mixed"
  "scenario tasks-failed"
)
PHASE_SECONDS=$(( SOAK_SECONDS / 12 )); [ "$PHASE_SECONDS" -ge 3 ] || PHASE_SECONDS=3
echo "==> soak: ${SOAK_SECONDS}s, poll interval $POLL_INTERVAL, phases of ${PHASE_SECONDS}s, sample every ${SAMPLE_EVERY}s"
printf '%6s %8s %5s %8s %8s %9s  %s\n' "t(s)" "RSS(KB)" "fds" "polls" "errors" "scrapes" "phase"
T0=$(date +%s)
END=$(( T0 + SOAK_SECONDS ))
i=0
next_sample=$T0
while [ "$(date +%s)" -lt "$END" ]; do
  phase="${PHASES[$(( i % ${#PHASES[@]} ))]}"; i=$((i + 1))
  case "$phase" in
    stable) stop_sim; start_sim stable ;;
    scenario*) stop_sim; start_sim "${phase#scenario }" ;;
    kill) stop_sim ;;
    wrong-password) [ -n "$SIM_PID" ] || start_sim stable; echo "wrong-$RANDOM" >"$WORK/exp.pw" ;;
    hang) [ -n "$SIM_PID" ] || start_sim stable; kill -STOP "$SIM_PID" ;;
  esac
  phase_end=$(( $(date +%s) + PHASE_SECONDS ))
  while [ "$(date +%s)" -lt "$phase_end" ] && [ "$(date +%s)" -lt "$END" ]; do
    if [ "$(date +%s)" -ge "$next_sample" ]; then sample "$phase"; next_sample=$(( next_sample + SAMPLE_EVERY )); fi
    sleep 0.5
  done
  case "$phase" in
    wrong-password) cp "$WORK/sim.pw" "$WORK/exp.pw"; touch "$WORK/exp.pw" ;;
    hang) kill -CONT "$SIM_PID" ;;
  esac
  kill -0 "$EXP_PID" 2>/dev/null || { echo "!! the exporter died"; tail -50 "$WORK/exporter.log"; exit 1; }
done
# A last good stretch: the exporter must recover.
stop_sim; start_sim stable; sleep 3; sample "final (stable)"
UP=$(metric bitbucket_zdu_up)

echo
python3 - "$WORK/samples" "$RSS_RATIO" "$RSS_SLACK_KB" "$FD_SLACK" "$UP" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ratio, slack, fd_slack, up = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rss = [int(r[1]) for r in rows]; fds = [int(r[2]) for r in rows]
polls, errs, scrapes = int(float(rows[-1][3])), int(float(rows[-1][4])), int(rows[-1][5])
k = max(1, len(rows) // 3)
f_rss, l_rss = sum(rss[:k]) / k, sum(rss[-k:]) / k
f_fd, l_fd = max(fds[:k]), max(fds[-k:])
print(f"samples {len(rows)}; polls {polls} (both endpoints), poll errors {errs}, scrapes {scrapes}")
print(f"RSS  first third mean {f_rss/1024:.1f} MiB, last third mean {l_rss/1024:.1f} MiB, max {max(rss)/1024:.1f} MiB")
print(f"fds  first third max {f_fd}, last third max {l_fd}, overall max {max(fds)}")
ok = True
if l_rss > f_rss * ratio + slack:
    print(f"FAIL: RSS grew beyond {ratio} x + {slack} KiB"); ok = False
if l_fd > f_fd + fd_slack:
    print(f"FAIL: file descriptors grew by more than {fd_slack}"); ok = False
if up != 1:
    print("FAIL: bitbucket_zdu_up is not 1 after the final good stretch"); ok = False
if polls < 1000 or scrapes < 1000:
    print("NOTE: fewer than 1000 polls or scrapes; run longer (SOAK_SECONDS) for a stronger result")
print("VERDICT:", "PASS (flat memory and file descriptors, recovered)" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
