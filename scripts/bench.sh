#!/usr/bin/env bash
# Side-by-side benchmark of one or more exporter binaries against a static-bytes server that
# serves the very /metrics body each exporter produced (issue 9). See docs/performance.md.
#
# Usage: scripts/bench.sh [--smoke] [--fleet]
#   EXPORTERS="before=/path/a after=/path/b" scripts/bench.sh   compare binaries in one run
#   BENCH_SMOKE=1 scripts/bench.sh                             a few seconds per cell, small N
#   scripts/bench.sh --fleet                                   only the fleet cells
#
# The fleet cells (issue 17): one exporter with --config.file holding N targets, each its own
# upstream origin (127.x.y.z, all served by one bench_static upstream bound to 0.0.0.0) of
# BENCH_FLEET_NODES nodes, run under `ulimit -n BENCH_FLEET_NOFILE` (soft and hard: the
# exporter cannot raise it). Reported: every target up, every /probe answered, poll errors,
# RSS, descriptors (now and the peak seen while the fleet came up), idle CPU at 30 s polls,
# and /probe under wrk against a static server serving the same body.
#
# Settings (environment, defaults in brackets):
#   EXPORTERS            name=path pairs [current=target/<profile>/bitbucket-zdu-exporter, built]
#   BENCH_PROFILE        release|debug: profile of the default exporter and of the helper
#                        examples/bench_static.rs [release]
#   WRK_THREADS, WRK_CONNS, WRK_DURATION   the load client, same for every server [1, 8, 8s]
#   BENCH_LOAD_NODES     cluster sizes of the load cells ["4 1000"]
#   BENCH_LATENCY_NODES  cluster sizes of the single-scrape latency cells ["1000 5000"]
#   BENCH_LATENCY_RUNS   scrapes per latency cell, the median is reported [31]
#   BENCH_DECODE_NODES   cluster size of the poll-decode cell [5000]
#   BENCH_DECODE_POLLS   polls sampled in that cell (1 s apart) [7]
#   BENCH_IDLE_SECONDS   idle-CPU window at --poll.interval=30s [60]
#   BENCH_LOAD_POLL      --poll.interval of the exporters in the load cells [5s]
#   BENCH_PIN            1: pin servers to CPU 0 and the client (wrk, curl) to CPU 1 with
#                        taskset; 0: no pinning [1 when nproc >= 2]
#   BENCH_KEEP           1: keep the work directory (bodies, logs, raw wrk output) [0]
#   BENCH_FLEET_TARGETS  target counts of the fleet cells ["100 1000"]
#   BENCH_FLEET_NODES    nodes of each fleet target's cluster [8]
#   BENCH_FLEET_NOFILE   the exporter's open-files limit in the fleet cells [1024]
#   BENCH_FLEET_IDLE     idle-CPU window of a fleet cell, seconds [60]
#   BENCH_FLEET_SIDE     1: instead of one fleet cell per exporter, run every exporter of
#                        EXPORTERS at once against the one upstream (same config, same machine
#                        load) and report idle CPU per window side by side, with each
#                        exporter's ratio to the first [0]
#   BENCH_FLEET_WINDOWS  idle-CPU windows of the side-by-side fleet, BENCH_FLEET_IDLE each [4]
# --smoke sets WRK_DURATION=2s, BENCH_LOAD_NODES="4 100", BENCH_LATENCY_NODES="100 200",
# BENCH_LATENCY_RUNS=5, BENCH_DECODE_NODES=200, BENCH_DECODE_POLLS=2, BENCH_IDLE_SECONDS=3
# BENCH_FLEET_TARGETS=100, BENCH_FLEET_NOFILE=256 (too few descriptors to keep a connection
# alive per origin), BENCH_FLEET_IDLE=3 (each only when not set). It checks that everything
# runs and the tables print, and fails when a fleet target is down, a probe unanswered or a
# poll failed; its figures mean nothing.
#
# The upstream is examples/bench_static.rs in `upstream` mode, not `simulate`: the built-in
# simulator caps a cluster at 12 nodes, and the benchmark needs 1000 and 5000.
set -euo pipefail
CALLER_PWD="$PWD"
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

for arg in "$@"; do
  case "$arg" in
    --smoke) BENCH_SMOKE=1 ;;
    --fleet) FLEET_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${BENCH_SMOKE:-}" ] && [ "${BENCH_SMOKE}" != 0 ]; then
  SMOKE=1
  : "${WRK_DURATION:=2s}" "${BENCH_LOAD_NODES:=4 100}" "${BENCH_LATENCY_NODES:=100 200}"
  : "${BENCH_LATENCY_RUNS:=5}" "${BENCH_DECODE_NODES:=200}" "${BENCH_DECODE_POLLS:=2}"
  : "${BENCH_IDLE_SECONDS:=3}" "${BENCH_FLEET_TARGETS:=100}" "${BENCH_FLEET_NOFILE:=256}"
  : "${BENCH_FLEET_IDLE:=3}"
else
  SMOKE=0
fi
: "${BENCH_PROFILE:=release}" "${WRK_THREADS:=1}" "${WRK_CONNS:=8}" "${WRK_DURATION:=8s}"
: "${BENCH_LOAD_NODES:=4 1000}" "${BENCH_LATENCY_NODES:=1000 5000}" "${BENCH_LATENCY_RUNS:=31}"
: "${BENCH_DECODE_NODES:=5000}" "${BENCH_DECODE_POLLS:=7}" "${BENCH_IDLE_SECONDS:=60}"
: "${BENCH_LOAD_POLL:=5s}" "${BENCH_KEEP:=0}" "${FLEET_ONLY:=0}"
: "${BENCH_FLEET_TARGETS:=100 1000}" "${BENCH_FLEET_NODES:=8}" "${BENCH_FLEET_NOFILE:=1024}"
: "${BENCH_FLEET_IDLE:=60}" "${BENCH_FLEET_SIDE:=0}" "${BENCH_FLEET_WINDOWS:=4}"
if [ -z "${BENCH_PIN:-}" ]; then
  if [ "$(nproc)" -ge 2 ]; then BENCH_PIN=1; else BENCH_PIN=0; fi
fi

STEP_PREFIX=bench
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
die() { fail "$@"; }
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
need_commands wrk=wrk
for tool in curl taskset strip getconf awk sort; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

# --- binaries ----------------------------------------------------------------------------
case "$BENCH_PROFILE" in
  release) PROFILE_FLAG=(--release); PROFILE_DIR=release ;;
  debug) PROFILE_FLAG=(); PROFILE_DIR=debug ;;
  *) die "BENCH_PROFILE must be release or debug" ;;
esac
build=(--example bench_static)
[ -z "${EXPORTERS:-}" ] && build+=(--bin bitbucket-zdu-exporter)
log "cargo build ${PROFILE_FLAG[*]} ${build[*]}"
cargo build --quiet "${PROFILE_FLAG[@]}" "${build[@]}"
STATIC_BIN="$PWD/target/$PROFILE_DIR/examples/bench_static"
: "${EXPORTERS:=current=$PWD/target/$PROFILE_DIR/bitbucket-zdu-exporter}"

names=(); bins=()
for pair in $EXPORTERS; do
  name="${pair%%=*}"; path="${pair#*=}"
  case "$path" in /*) ;; *) path="$CALLER_PWD/$path" ;; esac
  if [ "$name" = "$pair" ] || [ -z "$name" ]; then die "EXPORTERS entries are name=path, got '$pair'"; fi
  [ -x "$path" ] || die "exporter '$name': $path is not an executable"
  names+=("$name"); bins+=("$(cd "$(dirname "$path")" && pwd)/$(basename "$path")")
done
[ ${#names[@]} -gt 0 ] || die "EXPORTERS is empty"

# --- processes ---------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zdu-bench.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$BENCH_KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ "$BENCH_PIN" = 1 ]; then SERVER_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 1)
else SERVER_PIN=(); CLIENT_PIN=(); fi

stop() { # stop PID: one process this script started
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local kept=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

wait_listening() { # wait_listening LOGFILE PID -> prints host:port from "listening on http://…"
  local i addr
  for i in $(seq 1 100); do
    addr="$(sed -n 's|^listening on http://||p' "$1" | head -1)"
    if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; die "helper exited before listening"; }
    sleep 0.1
  done
  die "helper did not start listening: $1"
}

start_upstream() { # start_upstream NODES -> sets UP_PID, UP_ADDR
  local out="$WORK/upstream-$1.out"
  "${CLIENT_PIN[@]}" "$STATIC_BIN" upstream --nodes "$1" >"$out" 2>&1 &
  UP_PID=$!; PIDS+=("$UP_PID")
  UP_ADDR="$(wait_listening "$out" "$UP_PID")"
}

start_static() { # start_static FILE CONTENT_TYPE CONTENT_ENCODING -> sets ST_PID, ST_ADDR
  local out="$WORK/static-$RANDOM.out" enc=()
  [ -n "$3" ] && enc=(--content-encoding "$3")
  "${SERVER_PIN[@]}" "$STATIC_BIN" serve-file --content-type "$2" "${enc[@]}" "$1" >"$out" 2>&1 &
  ST_PID=$!; PIDS+=("$ST_PID")
  ST_ADDR="$(wait_listening "$out" "$ST_PID")"
}

free_port() {
  local p
  for p in $(seq 19900 19999); do
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
  done
  die "no free port in 19900-19999"
}

# start_exporter BIN UPSTREAM_ADDR POLL_INTERVAL LOG_LEVEL -> sets EX_PID, EX_ADDR
start_exporter() {
  local port log="$WORK/exporter-$RANDOM.log" i
  port="$(free_port)"
  BITBUCKET_ZDU_PASSWORD=bench "${SERVER_PIN[@]}" "$1" \
    --bitbucket.url="http://$2" --bitbucket.username=bench \
    --web.listen-address="127.0.0.1:$port" --poll.interval="$3" --bitbucket.timeout="$3" \
    --log.level="$4" \
    >"$log" 2>&1 &
  EX_PID=$!; PIDS+=("$EX_PID"); EX_ADDR="127.0.0.1:$port"; EX_LOG="$log"
  # Ready once the first poll landed: a sample line `bitbucket_zdu_up 1` (with or without
  # labels), not a substring of a HELP text.
  for i in $(seq 1 300); do
    if curl -fsS -H 'Accept:' "http://$EX_ADDR/metrics" 2>/dev/null \
        | grep -E '^bitbucket_zdu_up(\{[^}]*\})? 1(\.0)?$' >/dev/null; then return 0; fi
    kill -0 "$EX_PID" 2>/dev/null || { cat "$log" >&2; die "exporter $1 exited"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "exporter $1 did not reach bitbucket_zdu_up 1 within 30 s"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; } # utime+stime
CLK_TCK="$(getconf CLK_TCK)"

# Scrape styles: plain (no Accept, no compression, as curl/wrk without headers) and
# Prometheus-style (OpenMetrics 1.0.0 and gzip, as Prometheus asks).
style_headers() {
  case "$1" in
    plain) echo "" ;;
    prom) echo "Accept: application/openmetrics-text;version=1.0.0|Accept-Encoding: gzip" ;;
  esac
}
hdr_args() { # hdr_args TOOL STYLE: -H arguments, one per line
  local IFS='|' h
  for h in $(style_headers "$2"); do printf -- '-H\n%s\n' "$h"; done
  if [ "$1" = curl ] && [ -z "$(style_headers "$2")" ]; then printf -- '-H\nAccept:\n'; fi
}

# run_wrk URL STYLE OUTFILE -> prints "req/s p50_ms p99_ms errors", as wrk's done() hook
# (scripts/wrk-report.lua) reports them
run_wrk() {
  local args=() line
  while IFS= read -r line; do args+=("$line"); done < <(hdr_args wrk "$2")
  "${CLIENT_PIN[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" \
    -s scripts/wrk-report.lua "${args[@]}" "$1" >"$3" 2>&1 || { cat "$3" >&2; die "wrk failed on $1"; }
  local report
  report="$(sed -n 's/^WRK_REPORT //p' "$3")"
  [ -n "$report" ] || { cat "$3" >&2; die "no WRK_REPORT line in wrk's output"; }
  echo "$report"
}

# fetch URL STYLE PREFIX: body to PREFIX.body, headers to PREFIX.hdr; sets CT and CE
fetch() {
  local args=() line
  while IFS= read -r line; do args+=("$line"); done < <(hdr_args curl "$2")
  curl -fsS "${args[@]}" -D "$3.hdr" -o "$3.body" "$1" || die "fetching $1 failed"
  CT="$(awk -F': ' 'tolower($1) == "content-type" {sub(/\r$/, "", $2); print $2}' "$3.hdr")"
  CE="$(awk -F': ' 'tolower($1) == "content-encoding" {sub(/\r$/, "", $2); print $2}' "$3.hdr")"
  [ -n "$CT" ] || die "no Content-Type from $1"
  if [ "$2" = prom ] && [ "$CE" != gzip ]; then die "$1 did not gzip a Prometheus-style scrape"; fi
}

median() { sort -g | awk '{a[NR] = $1} END { if (NR == 0) print "?"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# --- the fleet cells --------------------------------------------------------------------
# fleet_config N PORT FILE: N targets, each its own origin on loopback (127.1.0.1, 127.1.0.2,
# …: Linux routes all of 127/8 to lo), polled every 30 s.
fleet_config() {
  printf 'bench\n' >"$WORK/fleet-password"; chmod 600 "$WORK/fleet-password"
  awk -v n="$1" -v port="$2" -v pw="$WORK/fleet-password" 'BEGIN {
    print "targets:"
    for (i = 0; i < n; i++) {
      printf "  - name: f%04d\n    url: http://127.%d.%d.%d:%d\n", i, 1 + int(i / 62500), int(i / 250) % 250, i % 250 + 1, port
      printf "    auth: {username: bench, password_file: %s}\n    poll_interval: 30s\n    timeout: 10s\n", pw
    }
  }' >"$3"
}

fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# fleet_cell NAME BIN N: one row of FLEET_ROWS
fleet_cell() {
  local name="$1" bin="$2" n="$3" port log cfg up=0 peak=0 fds t0 i
  cfg="$WORK/fleet-$n.yml"; log="$WORK/fleet-$n.log"
  fleet_config "$n" "${UP_ADDR##*:}" "$cfg"
  port="$(free_port)"
  # `ulimit -n` sets the soft and the hard limit: the exporter cannot raise it.
  # shellcheck disable=SC2016 # expanded by the inner shell
  "${SERVER_PIN[@]}" bash -c 'ulimit -n "$1" && shift && exec "$@"' _ "$BENCH_FLEET_NOFILE" \
    "$bin" --config.file="$cfg" --web.listen-address="127.0.0.1:$port" --log.level=warn \
    >"$log" 2>&1 &
  EX_PID=$!; PIDS+=("$EX_PID"); EX_ADDR="127.0.0.1:$port"
  t0="$(date +%s.%N)"
  for i in $(seq 1 600); do
    kill -0 "$EX_PID" 2>/dev/null || { cat "$log" >&2; die "fleet exporter exited"; }
    fds="$(fd_count "$EX_PID")"; [ "$fds" -gt "$peak" ] && peak="$fds"
    up="$(curl -fsS --max-time 2 "http://$EX_ADDR/api/v1/targets" 2>/dev/null | grep -o '"up":true' | wc -l || true)"
    [ "$up" -ge "$n" ] && break
    sleep 0.2
  done
  [ "$up" -ge "$n" ] || { tail -20 "$log" >&2; die "fleet of $n: only $up targets up after 120 s"; }
  local all_up_s nofile
  all_up_s="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
  nofile="$(awk '/^Max open files/ {print $4 "/" $5}' "/proc/$EX_PID/limits")"
  log "fleet: $n targets up in ${all_up_s}s (nofile $nofile); idle CPU over ${BENCH_FLEET_IDLE}s"
  local c0 c1
  c0="$(cpu_ticks "$EX_PID")"; sleep "$BENCH_FLEET_IDLE"; c1="$(cpu_ticks "$EX_PID")"
  local idle_pct rss fds_now
  idle_pct="$(awk -v d="$((c1 - c0))" -v h="$CLK_TCK" -v s="$BENCH_FLEET_IDLE" 'BEGIN {printf "%.3f", 100 * d / h / s}')"
  rss="$(rss_kib "$EX_PID")"; fds_now="$(fd_count "$EX_PID")"
  # Every target's /probe, one curl (one connection), and /-/healthy.
  local urls=() probes="$WORK/fleet-$n.probes" answered up_samples errors healthy
  for i in $(seq 0 $((n - 1))); do urls+=("http://$EX_ADDR/probe?target=$(printf 'f%04d' "$i")"); done
  curl -sS --max-time 60 -H 'Accept:' -w '\nHTTP_CODE %{http_code}\n' "${urls[@]}" >"$probes" || true
  answered="$(grep -c '^HTTP_CODE 200$' "$probes" || true)"
  up_samples="$(grep -cE '^bitbucket_zdu_up(\{[^}]*\})? 1(\.0)?$' "$probes" || true)"
  errors="$(awk '/^bitbucket_zdu_poll_errors_total\{/ && $NF > 0 {e += $NF} END {print e + 0}' "$probes")"
  healthy="$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' "http://$EX_ADDR/-/healthy" || echo 000)"
  log "fleet: $n targets: $answered probes answered, $up_samples up, $errors poll errors, /-/healthy $healthy"
  # /probe of one target under load against a static server serving the same body.
  local prefix="$WORK/fleet-$n-probe" res e_rps e_p50 e_p99 e_err s_rps s_p99 ratio
  fetch "http://$EX_ADDR/probe?target=f0000" plain "$prefix"
  res="$(run_wrk "http://$EX_ADDR/probe?target=f0000" plain "$prefix.wrk-exporter")"
  read -r e_rps e_p50 e_p99 e_err <<<"$res"
  [ "$(fd_count "$EX_PID")" -gt "$peak" ] && peak="$(fd_count "$EX_PID")"
  start_static "$prefix.body" "$CT" "$CE"
  res="$(run_wrk "http://$ST_ADDR/probe" plain "$prefix.wrk-static")"
  read -r s_rps _ s_p99 _ <<<"$res"
  stop "$ST_PID"
  ratio="$(awk -v a="$e_p99" -v b="$s_p99" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
  stop "$EX_PID"
  FLEET_ROWS+=("| $name | $n | $BENCH_FLEET_NODES | $nofile | $all_up_s | $up_samples/$n | $answered/$n | $errors | $healthy | $(mib "$rss") | $fds_now | $peak | $idle_pct | $e_rps | $e_p99 | $s_rps | $s_p99 | $ratio | $e_err |")
  if [ "$SMOKE" = 1 ] && { [ "$up_samples" != "$n" ] || [ "$answered" != "$n" ] || [ "$errors" != 0 ] || [ "$healthy" != 200 ] || [ "$e_err" != 0 ]; }; then
    die "fleet of $n: $up_samples up, $answered answered, $errors poll errors, /-/healthy $healthy, $e_err wrk errors (log: $log)"
  fi
}

# fleet_side N: every exporter at once against one fleet of N targets; rows of SIDE_ROWS,
# one per window: idle CPU % (user + sys) of each exporter and its ratio to the first.
fleet_side() {
  local n="$1" cfg="$WORK/fleet-side-$1.yml" i port w pids=() addrs=() up
  fleet_config "$n" "${UP_ADDR##*:}" "$cfg"
  for i in "${!names[@]}"; do
    port="$(free_port)"
    # shellcheck disable=SC2016 # expanded by the inner shell
    "${SERVER_PIN[@]}" bash -c 'ulimit -n "$1" && shift && exec "$@"' _ "$BENCH_FLEET_NOFILE" \
      "${bins[$i]}" --config.file="$cfg" --web.listen-address="127.0.0.1:$port" --log.level=warn \
      >"$WORK/fleet-side-${names[$i]}.log" 2>&1 &
    pids+=("$!"); PIDS+=("$!"); addrs+=("127.0.0.1:$port")
    sleep 0.5 # the next free_port must not pick the same port before it is bound
  done
  for i in "${!names[@]}"; do
    for _ in $(seq 1 600); do
      kill -0 "${pids[$i]}" 2>/dev/null || die "fleet exporter ${names[$i]} exited"
      up="$(curl -fsS --max-time 2 "http://${addrs[$i]}/api/v1/targets" 2>/dev/null | grep -o '"up":true' | wc -l || true)"
      [ "$up" -ge "$n" ] && break
      sleep 0.2
    done
    [ "$up" -ge "$n" ] || die "side-by-side fleet of $n: ${names[$i]} has only $up targets up"
  done
  sleep 5
  for w in $(seq 1 "$BENCH_FLEET_WINDOWS"); do
    local before=() row load first=""
    for i in "${!pids[@]}"; do before+=("$(cpu_ticks "${pids[$i]}")"); done
    load="$(cut -d' ' -f1 /proc/loadavg)"
    sleep "$BENCH_FLEET_IDLE"
    row="| $n | $w | $load |"
    for i in "${!pids[@]}"; do
      local pct
      pct="$(awk -v d="$(( $(cpu_ticks "${pids[$i]}") - before[i] ))" -v h="$CLK_TCK" -v s="$BENCH_FLEET_IDLE" 'BEGIN {printf "%.3f", 100 * d / h / s}')"
      [ -z "$first" ] && first="$pct"
      row+=" $pct ($(awk -v a="$pct" -v b="$first" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')×) |"
    done
    SIDE_ROWS+=("$row")
  done
  row="| $n | RSS MiB | |"
  for i in "${!pids[@]}"; do row+=" $(mib "$(rss_kib "${pids[$i]}")") |"; done
  SIDE_ROWS+=("$row")
  for i in "${!pids[@]}"; do stop "${pids[$i]}"; done
}

# --- the run -----------------------------------------------------------------------------
started=$(date +%s)
log "work directory $WORK; pinning: $([ "$BENCH_PIN" = 1 ] && echo 'servers CPU 0, client CPU 1' || echo off)"
log "exporters: $EXPORTERS"
LOAD_ROWS=(); LAT_ROWS=(); DEC_ROWS=(); IDLE_ROWS=(); SIZE_ROWS=(); FLEET_ROWS=(); SIDE_ROWS=()

if [ "$FLEET_ONLY" = 0 ]; then

for n in $BENCH_LOAD_NODES; do
  start_upstream "$n"
  for i in "${!names[@]}"; do
    name="${names[$i]}"
    start_exporter "${bins[$i]}" "$UP_ADDR" "$BENCH_LOAD_POLL" warn
    for style in plain prom; do
      prefix="$WORK/$name-$n-$style"
      fetch "http://$EX_ADDR/metrics" "$style" "$prefix"
      body_kib="$(awk -v b="$(stat -c %s "$prefix.body")" 'BEGIN {printf "%.1f", b / 1024}')"
      log "load: $n nodes, $style, $name ($body_kib KiB body)"
      res="$(run_wrk "http://$EX_ADDR/metrics" "$style" "$prefix.wrk-exporter")"
      read -r e_rps e_p50 e_p99 e_err <<<"$res"
      e_rss="$(rss_kib "$EX_PID")"
      start_static "$prefix.body" "$CT" "$CE"
      log "load: $n nodes, $style, static bytes of $name"
      res="$(run_wrk "http://$ST_ADDR/metrics" "$style" "$prefix.wrk-static")"
      read -r s_rps s_p50 s_p99 _ <<<"$res"
      s_rss="$(rss_kib "$ST_PID")"
      stop "$ST_PID"
      if [ "$SMOKE" = 1 ] && [ "$e_err" != 0 ]; then die "$name: $e_err errors under load ($prefix.wrk-exporter)"; fi
      ratio="$(awk -v a="$e_rps" -v b="$s_rps" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')"
      p99r="$(awk -v a="$e_p99" -v b="$s_p99" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
      LOAD_ROWS+=("| $n | $style | $name | $body_kib | $e_rps | $e_p50 | $e_p99 | $(mib "$e_rss") | $e_err | $s_rps | $s_p50 | $s_p99 | $(mib "$s_rss") | $ratio | $p99r |")
    done
    stop "$EX_PID"
  done
  stop "$UP_PID"
done

for n in $BENCH_LATENCY_NODES; do
  start_upstream "$n"
  for i in "${!names[@]}"; do
    name="${names[$i]}"
    # 30 s: no poll lands during the measurement.
    start_exporter "${bins[$i]}" "$UP_ADDR" 30s warn
    row="| $n | $name"
    for style in plain prom; do
      log "single-scrape latency: $n nodes, $style, $name, median of $BENCH_LATENCY_RUNS"
      args=()
      while IFS= read -r line; do args+=("$line"); done < <(hdr_args curl "$style")
      curl -fsS "${args[@]}" -o /dev/null "http://$EX_ADDR/metrics" # warm-up
      med="$(for _ in $(seq 1 "$BENCH_LATENCY_RUNS"); do
          "${CLIENT_PIN[@]}" curl -fsS "${args[@]}" -o /dev/null -w '%{time_total}\n' "http://$EX_ADDR/metrics"
        done | median)"
      size="$(curl -fsS "${args[@]}" -o /dev/null -w '%{size_download}' "http://$EX_ADDR/metrics")"
      row+=" | $(awk -v s="$med" 'BEGIN {printf "%.2f", s * 1000}') | $(awk -v b="$size" 'BEGIN {printf "%.0f", b / 1024}')"
    done
    row+=" | $(mib "$(rss_kib "$EX_PID")") |"
    LAT_ROWS+=("$row")
    stop "$EX_PID"
  done
  stop "$UP_PID"
done

# Poll decode: bitbucket_zdu_poll_duration_seconds{endpoint="cluster"} is the GET of
# /rest/zdu/cluster over loopback (the upstream serves prebuilt bytes) plus the JSON decode;
# the debug log's "poll done" elapsed_ms adds building the cluster view.
n="$BENCH_DECODE_NODES"
start_upstream "$n"
for i in "${!names[@]}"; do
  name="${names[$i]}"
  start_exporter "${bins[$i]}" "$UP_ADDR" 1s debug
  log "poll decode: $n nodes, $name, $BENCH_DECODE_POLLS polls"
  samples="$WORK/$name-decode.samples"; : >"$samples"
  for _ in $(seq 1 "$BENCH_DECODE_POLLS"); do
    curl -fsS -H 'Accept:' "http://$EX_ADDR/metrics" \
      | awk '/^bitbucket_zdu_poll_duration_seconds\{.*endpoint="cluster"/ {print $NF}' >>"$samples"
    sleep 1.1
  done
  med="$(median <"$samples")"; min="$(sort -g "$samples" | head -1)"
  whole="$(sed -n 's/.*elapsed_ms=\([0-9]*\).*poll done.*/\1/p; s/.*poll done.*elapsed_ms=\([0-9]*\).*/\1/p' "$EX_LOG" | median)"
  DEC_ROWS+=("| $n | $name | $(awk -v s="$med" 'BEGIN {printf "%.2f", s * 1000}') | $(awk -v s="$min" 'BEGIN {printf "%.2f", s * 1000}') | $whole | $(wc -l <"$samples") | $(mib "$(rss_kib "$EX_PID")") |")
  stop "$EX_PID"
done
stop "$UP_PID"

# Idle CPU: 4 nodes, --poll.interval=30s, nobody scrapes.
start_upstream 4
for i in "${!names[@]}"; do
  name="${names[$i]}"
  start_exporter "${bins[$i]}" "$UP_ADDR" 30s warn
  log "idle CPU: $name, ${BENCH_IDLE_SECONDS}s"
  t0="$(cpu_ticks "$EX_PID")"; sleep "$BENCH_IDLE_SECONDS"; t1="$(cpu_ticks "$EX_PID")"
  IDLE_ROWS+=("| $name | $BENCH_IDLE_SECONDS | $(awk -v d="$((t1 - t0))" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", d / h}') | $(awk -v d="$((t1 - t0))" -v h="$CLK_TCK" -v s="$BENCH_IDLE_SECONDS" 'BEGIN {printf "%.3f", 100 * d / h / s}') | $(mib "$(rss_kib "$EX_PID")") |")
  stop "$EX_PID"
done
stop "$UP_PID"

for i in "${!names[@]}"; do
  size="$(stat -c %s "${bins[$i]}")"
  strip -o "$WORK/stripped" "${bins[$i]}"
  stripped="$(stat -c %s "$WORK/stripped")"
  SIZE_ROWS+=("| ${names[$i]} | $(mib "$((size / 1024))") | $(mib "$((stripped / 1024))") |")
done

fi # FLEET_ONLY

# The fleet: one upstream of BENCH_FLEET_NODES nodes on every loopback address.
start_upstream_on() { # start_upstream_on LISTEN NODES -> sets UP_PID, UP_ADDR
  local out="$WORK/upstream-any-$2.out"
  "${CLIENT_PIN[@]}" "$STATIC_BIN" upstream --listen "$1" --nodes "$2" >"$out" 2>&1 &
  UP_PID=$!; PIDS+=("$UP_PID")
  UP_ADDR="$(wait_listening "$out" "$UP_PID")"
}
if [ -n "$BENCH_FLEET_TARGETS" ]; then
  start_upstream_on 0.0.0.0:0 "$BENCH_FLEET_NODES"
  if [ "$BENCH_FLEET_SIDE" = 1 ]; then
    for n in $BENCH_FLEET_TARGETS; do
      log "fleet side by side: ${names[*]}, $n targets x $BENCH_FLEET_NODES nodes, ulimit -n $BENCH_FLEET_NOFILE"
      fleet_side "$n"
    done
  else
    for i in "${!names[@]}"; do
      for n in $BENCH_FLEET_TARGETS; do
        log "fleet: ${names[$i]}, $n targets x $BENCH_FLEET_NODES nodes, ulimit -n $BENCH_FLEET_NOFILE"
        fleet_cell "${names[$i]}" "${bins[$i]}" "$n"
      done
    done
  fi
  stop "$UP_PID"
fi

# --- the tables --------------------------------------------------------------------------
echo
echo "## bitbucket-zdu-exporter benchmark $( [ "$SMOKE" = 1 ] && echo '(SMOKE: figures mean nothing)')"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ); $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(awk '/^MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION; pinning $([ "$BENCH_PIN" = 1 ] && echo 'servers CPU 0, wrk/curl CPU 1' || echo off); upstream polled every $BENCH_LOAD_POLL during load; exporter profile of the default build: $BENCH_PROFILE"
echo
if [ "$FLEET_ONLY" = 0 ]; then
echo "### Load: exporter vs static bytes of its own body"
echo
echo "| nodes | scrape | exporter | body KiB | req/s | p50 ms | p99 ms | RSS MiB | errors | static req/s | static p50 ms | static p99 ms | static RSS MiB | req/s ratio | p99 ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${LOAD_ROWS[@]}"
echo
echo "### Single scrape (curl, median of $BENCH_LATENCY_RUNS, no poll during it)"
echo
echo "| nodes | exporter | plain ms | plain KiB | prom ms | prom KiB (gzip) | RSS MiB |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${LAT_ROWS[@]}"
echo
echo "### Poll of /rest/zdu/cluster (bitbucket_zdu_poll_duration_seconds: GET + decode)"
echo
echo "| nodes | exporter | median ms | min ms | whole poll ms (log) | samples | RSS MiB |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${DEC_ROWS[@]}"
echo
echo "### Idle CPU (4 nodes, --poll.interval=30s, no scrapes)"
echo
echo "| exporter | seconds | CPU s | % of one core | RSS MiB |"
echo "|---|---|---|---|---|"
printf '%s\n' "${IDLE_ROWS[@]}"
echo
echo "### Binary size"
echo
echo "| exporter | MiB | stripped MiB |"
echo "|---|---|---|"
printf '%s\n' "${SIZE_ROWS[@]}"
echo
fi # FLEET_ONLY
if [ ${#FLEET_ROWS[@]} -gt 0 ]; then
  echo "### Fleet: N targets x $BENCH_FLEET_NODES nodes, each its own origin, ulimit -n $BENCH_FLEET_NOFILE, polls every 30 s"
  echo
  echo "idle CPU over ${BENCH_FLEET_IDLE}s with no scrapes; fds peak: the most seen while the fleet came up and under load; /probe of one target, wrk as above, vs static bytes of its body"
  echo
  echo "| exporter | targets | nodes | nofile soft/hard | all up after s | up | probes answered | poll errors | /-/healthy | RSS MiB | fds | fds peak | idle CPU % of one core | probe req/s | probe p99 ms | static req/s | static p99 ms | p99 ratio | wrk errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${FLEET_ROWS[@]}"
  echo
fi
if [ ${#SIDE_ROWS[@]} -gt 0 ]; then
  echo "### Fleet side by side: every exporter at once, N targets x $BENCH_FLEET_NODES nodes, ulimit -n $BENCH_FLEET_NOFILE, polls every 30 s"
  echo
  echo "idle CPU % of one core (user + sys) over ${BENCH_FLEET_IDLE}s windows with no scrapes, and its ratio to the first exporter's in the same window"
  echo
  printf '| targets | window | load | %s |\n' "$(printf '%s | ' "${names[@]}" | sed 's/ | $//')"
  printf '|---|---|---|%s\n' "$(printf -- '---|%.0s' "${names[@]}")"
  printf '%s\n' "${SIDE_ROWS[@]}"
  echo
fi
log "done in $(( $(date +%s) - started )) s"
