#!/usr/bin/env bash
# End to end with the real parts (issue 3 part 6, and the real-output half of part 5).
#
# Starts, all on 127.0.0.1 with free ports and everything in one temp dir:
#   simulators   healthy (rolling-upgrade), stuck (stuck-mixed), broken (not-clustered)
#   exporters    healthy: one, /metrics (job bitbucket-zdu);
#                stuck: three "sidecars", one per Bitbucket pod, scraped by a job
#                kubernetes-pods through file_sd targets carrying __meta_kubernetes_* labels
#                and the usual labelmap relabelling (pod labels copied, including
#                controller_revision_hash, which differs between upgraded and old pods);
#                central: one multi-target exporter, /probe?target=broken (job bitbucket-zdu)
#                and its own /metrics (job bitbucket-zdu-exporter)
#   prometheus   Debian's, loading the mixin's rules rendered with
#                alerts/examples/fast-thresholds.json (alerts/render.sh --config FILE)
#   alertmanager Debian's, routing everything to tests/e2e/webhook.py
# then runs tests/e2e/check.py (the assertions and the faults it injects: kill a stuck sidecar
# while the page is pending, stop the stuck simulator once it paged) and cleans up.
#
# Usage: tests/e2e/run.sh              (from anywhere; docs/e2e.md explains the output)
# Env:   E2E_SPEED=10                  simulator speed factor
#        E2E_TIMEOUT=420               hard limit in seconds for everything after the build
#        E2E_PROFILE=debug|release     cargo profile of the exporter build (debug: shared with cargo test)
#        E2E_KEEP=1                    keep the temp dir (configs, logs, captures) and print its path
#        E2E_THRESHOLDS=FILE           another alerts/render.sh --config override (default
#                                      tests/e2e/overrides.jsonnet; ha.sh uses the same rules)
#        SKIP_E2E_HA=1                 skip tests/e2e/ha.sh (two Prometheus, two Alertmanagers)
#        E2E_RESTART_AT=15             when to restart one stuck-cluster sidecar (seconds into the checks)
#        E2E_UNKNOWN_WATCH=30          seconds to watch the stuck cluster while nothing is known
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
HERE="$ROOT/tests/e2e"

SPEED="${E2E_SPEED:-10}"
HARD_TIMEOUT="${E2E_TIMEOUT:-420}"
PROFILE="${E2E_PROFILE:-debug}"
THRESHOLDS="${E2E_THRESHOLDS:-$HERE/overrides.jsonnet}"
JOB="bitbucket-zdu"
K8S_JOB="kubernetes-pods"
EXPORTER_JOB="bitbucket-zdu-exporter"
JOBS="$JOB|$K8S_JOB|$EXPORTER_JOB"
SCRAPE=1   # seconds; scrape and rule evaluation interval
RESTART_AT="${E2E_RESTART_AT:-15}"  # seconds after the checks start: restart a stuck sidecar
UNKNOWN_WATCH="${E2E_UNKNOWN_WATCH:-30}"

say() { printf '[e2e] %s\n' "$*"; }

# ---- cleanup: kill every child we started (by pid), show logs on failure, remove the temp dir
PIDS=()
NAMES=()
TMP=""
WATCHDOG=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WATCHDOG" ]; then kill "$WATCHDOG" 2>/dev/null || true; fi
  local i
  for i in "${!PIDS[@]}"; do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for i in "${!PIDS[@]}"; do kill -0 "${PIDS[$i]}" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.3
  done
  for i in "${!PIDS[@]}"; do kill -KILL "${PIDS[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -n "$TMP" ] && [ -d "$TMP/logs" ]; then
    say "FAILED (exit $rc); last lines of every component's log:"
    local f
    for f in "$TMP"/logs/*.log; do
      [ -f "$f" ] || continue
      printf '\n----- %s (last 25 lines) -----\n' "$(basename "$f")"
      tail -n 25 "$f" || true
    done
    printf '\n'
  fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ -n "${E2E_KEEP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "hard timeout of ${HARD_TIMEOUT}s reached"; exit 124' TERM

# start NAME CMD...: runs CMD in the background, output to $TMP/logs/NAME.log
start() {
  local name="$1"; shift
  "$@" >"$TMP/logs/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
}

# wait_http NAME URL [SECONDS]: until URL answers 2xx, or fail (also if NAME's process died)
wait_http() {
  local name="$1" url="$2" limit="${3:-30}" i pid=""
  for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$name" ] && pid="${PIDS[$i]}"; done
  for _ in $(seq 1 $((limit * 5))); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited before $url answered"; return 1
    fi
    sleep 0.2
  done
  say "$name: $url did not answer within ${limit}s"; return 1
}

# ---- tools: Debian's prometheus (promtool), prometheus-alertmanager, jsonnet, curl
need=()
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || need+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v jsonnet >/dev/null 2>&1 || need+=(jsonnet)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Their system services may now run on 9090/9093/9100: this test never uses those ports
  # nor their data (own ports, own --storage.* paths below), so they are left alone.
fi
command -v python3 >/dev/null || { say "python3 is required"; exit 2; }

# ---- the exporter binary
say "building the exporter (cargo build, profile $PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin bitbucket-zdu-exporter
else
  cargo build --quiet --bin bitbucket-zdu-exporter
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/$PROFILE/bitbucket-zdu-exporter"
[ -x "$BIN" ] || { say "no binary at $BIN"; exit 2; }

# From here on everything is bounded by the hard timeout.
( sleep "$HARD_TIMEOUT" & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM; wait $s && kill -TERM $$ 2>/dev/null ) &
WATCHDOG=$!
T_START=$(date +%s)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bbzdu-e2e.XXXXXX")"
mkdir -p "$TMP/logs" "$TMP/prometheus-data" "$TMP/alertmanager-data" "$TMP/captures"

# ---- free loopback ports
read -r P_SIM_H P_SIM_S P_SIM_B P_EXP_H P_EXP_S1 P_EXP_S2 P_EXP_S3 P_EXP_C P_PROM P_AM P_WH < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(11):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
L=127.0.0.1

# ---- alert rules through the documented override, checked by promtool
# The thresholds file (tests/e2e/overrides.jsonnet: alerts/examples/fast-thresholds.json with
# NodeError faster), plus the selector of this set-up (its kubernetes-pods job does not match
# the default job=~".*bitbucket-zdu.*").
cat >"$TMP/overrides.jsonnet" <<EOF
std.mergePatch(import '$THRESHOLDS', { selector: 'job=~"$JOB|$K8S_JOB"' })
EOF
say "rendering alert rules with $(basename "$THRESHOLDS") (alerts/render.sh --config)"
bash "$ROOT/alerts/render.sh" --config "$TMP/overrides.jsonnet" >"$TMP/rules.yaml"
bash "$ROOT/alerts/render.sh" --config "$TMP/overrides.jsonnet" --json >"$TMP/rules.json"
seconds_of() {  # seconds_of 'thresholds.stuckMixed.noProgress'
  jsonnet -J "$ROOT/alerts" -e "local l = import 'lib.libsonnet'; local c = std.mergePatch((import 'config.libsonnet')._config, import '$TMP/overrides.jsonnet'); l.seconds(c.$1)"
}
STUCK_NO_PROGRESS="$(seconds_of thresholds.stuckMixed.noProgress)"
STUCK_FOR="$(seconds_of "thresholds.stuckMixed['for']")"
promtool check rules "$TMP/rules.yaml" >"$TMP/logs/promtool.log" 2>&1 || { cat "$TMP/logs/promtool.log"; exit 1; }
say "promtool check rules: $(grep -o 'SUCCESS.*' "$TMP/logs/promtool.log" | head -1)"

# ---- configs
cat >"$TMP/central.yml" <<EOF
# One central exporter with several targets, scraped through /probe?target=NAME.
targets:
  - name: stuck
    url: http://$L:$P_SIM_S
  - name: broken
    url: http://$L:$P_SIM_B
EOF

# The stuck cluster's three pods as Kubernetes service discovery would describe them
# (file_sd stands in for kubernetes_sd_configs; check.py rewrites the file when it kills a pod).
# bitbucket-0 was already recreated by the upgrade: another controller-revision-hash.
pod_target() {  # pod_target PORT POD_NAME REVISION
  cat <<EOF
- targets: ['$L:$1']
  labels:
    __meta_kubernetes_namespace: atlassian
    __meta_kubernetes_pod_name: $2
    __meta_kubernetes_pod_container_name: zdu-exporter
    __meta_kubernetes_pod_label_app_kubernetes_io_name: bitbucket
    __meta_kubernetes_pod_label_cluster: stuck
    __meta_kubernetes_pod_label_controller_revision_hash: $3
    __meta_kubernetes_pod_label_statefulset_kubernetes_io_pod_name: $2
    __meta_kubernetes_pod_annotation_prometheus_io_scrape: "true"
EOF
}
{
  pod_target "$P_EXP_S1" bitbucket-0 bitbucket-6d5f7c9b8
  pod_target "$P_EXP_S2" bitbucket-1 bitbucket-55c4d8f7d9
  pod_target "$P_EXP_S3" bitbucket-2 bitbucket-55c4d8f7d9
} >"$TMP/pods.yml"

cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: ${SCRAPE}s
  scrape_timeout: ${SCRAPE}s
  evaluation_interval: ${SCRAPE}s
rule_files:
  - $TMP/rules.yaml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['$L:$P_AM']
scrape_configs:
  - job_name: $JOB
    static_configs:
      # the healthy cluster: one exporter
      - targets: ['$L:$P_EXP_H']
        labels: {cluster: healthy}
      # a central multi-target exporter, through /probe
      - targets: ['$L:$P_EXP_C']
        labels: {cluster: broken, instance: 'central/broken', __metrics_path__: /probe, __param_target: broken}
  # the central exporter's own metrics (build info, process), in a job of their own
  - job_name: $EXPORTER_JOB
    static_configs:
      - targets: ['$L:$P_EXP_C']
  # the stuck cluster: one sidecar per Bitbucket pod, the usual kubernetes-pods job
  - job_name: $K8S_JOB
    file_sd_configs:
      - files: ['$TMP/pods.yml']
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - action: labelmap
        regex: __meta_kubernetes_pod_label_(.+)
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
EOF
promtool check config "$TMP/prometheus.yml" >>"$TMP/logs/promtool.log" 2>&1 || { cat "$TMP/logs/promtool.log"; exit 1; }

cat >"$TMP/alertmanager.yml" <<EOF
route:
  receiver: webhook
  group_by: ['alertname', 'cluster']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: http://$L:$P_WH/alerts
        send_resolved: true
EOF
if command -v amtool >/dev/null 2>&1; then
  amtool check-config "$TMP/alertmanager.yml" >"$TMP/logs/amtool.log" 2>&1 || { cat "$TMP/logs/amtool.log"; exit 1; }
fi

# ---- start everything
say "starting on 127.0.0.1: simulators :$P_SIM_H (healthy) :$P_SIM_S (stuck) :$P_SIM_B (broken), exporters :$P_EXP_H :$P_EXP_S1 :$P_EXP_S2 :$P_EXP_S3 :$P_EXP_C, prometheus :$P_PROM, alertmanager :$P_AM, webhook :$P_WH"
start webhook python3 "$HERE/webhook.py" --listen "$L:$P_WH" --out "$TMP/webhook.jsonl"
start sim-healthy "$BIN" simulate --web.listen-address "$L:$P_SIM_H" --scenario rolling-upgrade --speed "$SPEED"
start sim-stuck "$BIN" simulate --web.listen-address "$L:$P_SIM_S" --scenario stuck-mixed --speed "$SPEED"
start sim-broken "$BIN" simulate --web.listen-address "$L:$P_SIM_B" --scenario not-clustered --speed "$SPEED"
EXP_FLAGS=(--poll.interval 1s --bitbucket.timeout 1s --log.level info)
start exporter-healthy "$BIN" --bitbucket.url "http://$L:$P_SIM_H" --web.listen-address "$L:$P_EXP_H" \
  --state.file "$TMP/exporter-healthy.state" "${EXP_FLAGS[@]}"
start exporter-stuck-sidecar-1 "$BIN" --bitbucket.url "http://$L:$P_SIM_S" --web.listen-address "$L:$P_EXP_S1" "${EXP_FLAGS[@]}"
start exporter-stuck-sidecar-2 "$BIN" --bitbucket.url "http://$L:$P_SIM_S" --web.listen-address "$L:$P_EXP_S2" "${EXP_FLAGS[@]}"
start exporter-stuck-sidecar-3 "$BIN" --bitbucket.url "http://$L:$P_SIM_S" --web.listen-address "$L:$P_EXP_S3" "${EXP_FLAGS[@]}"
# the broken target logs a warning per poll; keep that log small
start exporter-central "$BIN" --config.file "$TMP/central.yml" --web.listen-address "$L:$P_EXP_C" \
  --poll.interval 1s --bitbucket.timeout 1s --log.level error
start alertmanager /usr/bin/prometheus-alertmanager --config.file "$TMP/alertmanager.yml" \
  --storage.path "$TMP/alertmanager-data" --web.listen-address "$L:$P_AM" \
  --web.external-url "http://$L:$P_AM/" --cluster.listen-address= --log.level=info
start prometheus /usr/bin/prometheus --config.file "$TMP/prometheus.yml" \
  --storage.tsdb.path "$TMP/prometheus-data" --web.listen-address "$L:$P_PROM" \
  --web.external-url "http://$L:$P_PROM/" --storage.tsdb.retention.time 1h --log.level=info

wait_http webhook "http://$L:$P_WH/-/healthy"
for n in healthy stuck broken; do
  var="P_SIM_${n:0:1}"; var="${var^^}"
  wait_http "sim-$n" "http://$L:${!var}/"
done
wait_http exporter-healthy "http://$L:$P_EXP_H/-/healthy"
wait_http exporter-stuck-sidecar-1 "http://$L:$P_EXP_S1/-/healthy"
wait_http exporter-stuck-sidecar-2 "http://$L:$P_EXP_S2/-/healthy"
wait_http exporter-stuck-sidecar-3 "http://$L:$P_EXP_S3/-/healthy"
wait_http exporter-central "http://$L:$P_EXP_C/-/healthy"
wait_http alertmanager "http://$L:$P_AM/-/ready" 60
wait_http prometheus "http://$L:$P_PROM/-/ready" 60
say "all components up after $(( $(date +%s) - T_START ))s"

# ---- the assertions
pid_of() { local i; for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$1" ] && echo "${PIDS[$i]}"; done; }
remaining=$(( HARD_TIMEOUT - ($(date +%s) - T_START) - 20 ))
python3 "$HERE/check.py" \
  --prometheus "http://$L:$P_PROM" \
  --webhook-log "$TMP/webhook.jsonl" \
  --healthy-metrics "http://$L:$P_EXP_H/metrics" \
  --capture "stuck-sidecar-1-metrics=http://$L:$P_EXP_S1/metrics" \
  --capture "central-metrics=http://$L:$P_EXP_C/metrics" \
  --capture "central-probe-stuck=http://$L:$P_EXP_C/probe?target=stuck" \
  --capture "central-probe-broken=http://$L:$P_EXP_C/probe?target=broken" \
  --early-capture "stuck-sidecar-3-metrics=http://$L:$P_EXP_S3/metrics" \
  --out-dir "$TMP/captures" \
  --dashboards "$ROOT"/dashboards/*.json \
  --lint "$ROOT/dashboards/lint.py" \
  --rules-json "$TMP/rules.json" \
  --job "$JOB" \
  --jobs "$JOBS" \
  --exporter-job "$EXPORTER_JOB" \
  --stuck-alert BitbucketZduUpgradeStuckMixed \
  --stuck-no-progress "$STUCK_NO_PROGRESS" --stuck-for "$STUCK_FOR" \
  --stuck-exporters 3 \
  --expect-restart "$L:$P_EXP_S2" \
  --expect "BitbucketZduNotClustered@broken" \
  --expect "BitbucketZduUpgradeStalled@stuck" \
  --expect-after-unknown "BitbucketZduBitbucketUnreachable@stuck" \
  --expect-after-unknown "BitbucketZduClusterUnobserved@stuck" \
  --kill-sidecar "$(pid_of exporter-stuck-sidecar-3)=$L:$P_EXP_S3" \
  --file-sd "$TMP/pods.yml" \
  --stop-simulator "$(pid_of sim-stuck)" \
  --unknown-watch "$UNKNOWN_WATCH" \
  --targets 6 \
  --scrape-interval "$SCRAPE" \
  --deadline "$remaining" &
CHECK=$!
PIDS+=("$CHECK"); NAMES+=(check)

# Meanwhile, restart one stuck-cluster sidecar while its cluster is MIXED (on Kubernetes the
# sidecar of the pod being upgraded restarts with it): the stuck-MIXED alert must still
# arrive once, on time, and no exporter-health alert may fire for the short gap.
for _ in $(seq 1 "$RESTART_AT"); do kill -0 "$CHECK" 2>/dev/null || break; sleep 1; done
if kill -0 "$CHECK" 2>/dev/null; then
  for i in "${!NAMES[@]}"; do
    if [ "${NAMES[$i]}" = exporter-stuck-sidecar-2 ]; then
      say "restarting exporter-stuck-sidecar-2 (pid ${PIDS[$i]}) while the stuck cluster is MIXED"
      kill -TERM "${PIDS[$i]}" 2>/dev/null || true
      wait "${PIDS[$i]}" 2>/dev/null || true
      NAMES[i]=exporter-stuck-sidecar-2-before-restart
    fi
  done
  sleep 3
  start exporter-stuck-sidecar-2 "$BIN" --bitbucket.url "http://$L:$P_SIM_S" --web.listen-address "$L:$P_EXP_S2" "${EXP_FLAGS[@]}"
  wait_http exporter-stuck-sidecar-2 "http://$L:$P_EXP_S2/-/healthy" || { kill -TERM "$CHECK"; exit 1; }
fi
rc=0
wait "$CHECK" || rc=$?
say "checks finished in $(( $(date +%s) - T_START ))s after the build (exit $rc)"
[ "$rc" -eq 0 ] || exit "$rc"
[ -z "${SKIP_E2E_HA:-}" ] || exit 0

# ---- then the production topology (tests/e2e/ha.sh), with this run's binary and rules; this
# run's processes are stopped first (CPU), and ha.sh has a watchdog of its own
kill "$WATCHDOG" 2>/dev/null || true
WATCHDOG=""
for i in "${!PIDS[@]}"; do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()
NAMES=()
E2E_BIN="$BIN" E2E_RULES="$TMP/rules.yaml" bash "$HERE/ha.sh" &
PIDS+=("$!"); NAMES+=(ha)
wait "${PIDS[0]}" || rc=$?
say "end to end finished in $(( $(date +%s) - T_START ))s after the build (exit $rc)"
exit "$rc"
