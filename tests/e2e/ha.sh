#!/usr/bin/env bash
# End to end as production runs it (issue 15): two Prometheus replicas and two clustered
# Alertmanagers, the mixin's rules and the shipped inhibit rules, notifications counted.
#
# Starts, all on 127.0.0.1 with free ports and everything in one temp dir:
#   sim-healthy  rolling-upgrade, 12 nodes   12 sidecar exporters (job kubernetes-pods, file_sd
#                                            targets with pod labels); ha_check.py replaces each
#                                            pod with its node (sidecar down, back with a new
#                                            revision label)
#   sim-error    node-error (a node in ERROR during a stuck upgrade)   one exporter (job bitbucket-zdu)
#   sim-central  stuck-mixed                 the central exporter, /probe?target=central (job
#                                            bitbucket-zdu) with a state file, own /metrics in
#                                            job bitbucket-zdu-exporter; ha_check.py restarts it
#                                            without the state file once it paged
#   prometheus-a, prometheus-b   external label replica=a|b, dropped for alerts by
#                                alerting.alert_relabel_configs (as kube-prometheus does);
#                                both send to both Alertmanagers
#   alertmanager-a, -b           clustered over loopback (--cluster.listen-address/--cluster.peer),
#                                the inhibit_rules of alerts/alertmanager.example.yml verbatim,
#                                one webhook receiver (tests/e2e/webhook.py)
# then runs tests/e2e/ha_check.py (faults and assertions; docs/e2e.md) and cleans up.
#
# Usage: tests/e2e/ha.sh            (run.sh runs it after its own checks)
# Env:   E2E_BIN=PATH               exporter binary (default: cargo build, debug profile)
#        E2E_HA_SPEED=10            simulator speed factor
#        E2E_HA_TIMEOUT=300         hard limit in seconds after the build
#        E2E_RULES=FILE             rules already rendered with this override (run.sh passes its own)
#        E2E_KEEP=1                 keep the temp dir and print its path
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
HERE="$ROOT/tests/e2e"
export STEP_PREFIX=e2e-ha
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

SPEED="${E2E_HA_SPEED:-10}"
HARD_TIMEOUT="${E2E_HA_TIMEOUT:-300}"
L=127.0.0.1
SIDECARS=12

say() { printf '[e2e-ha] %s\n' "$*"; }

# ---- tools: fail loudly when one is missing after installing its Debian package
need_commands prometheus=prometheus promtool=prometheus prometheus-alertmanager=prometheus-alertmanager \
  amtool=prometheus-alertmanager jsonnet=jsonnet curl=curl python3=python3

# ---- the exporter binary
BIN="${E2E_BIN:-}"
if [ -z "$BIN" ]; then
  say "building the exporter (cargo build)"
  cargo build --quiet --bin bitbucket-zdu-exporter
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bitbucket-zdu-exporter"
fi
[ -x "$BIN" ] || fail "no exporter binary at $BIN"

# ---- cleanup: every process started here (by pid, including those ha_check.py started)
PIDS=()
NAMES=()
TMP="$(mktemp -d "${TMPDIR:-/tmp}/bbzdu-e2e-ha.XXXXXX")"
mkdir -p "$TMP/logs"
WATCHDOG=""
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  if [ -n "$WATCHDOG" ]; then kill "$WATCHDOG" 2>/dev/null || true; fi
  local all=("${PIDS[@]}")
  if [ -f "$TMP/spawned.pids" ]; then
    while read -r p; do all+=("$p"); done <"$TMP/spawned.pids"
  fi
  for p in "${all[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    say "FAILED (exit $rc); last lines of the logs:"
    for p in "$TMP"/logs/*.log; do
      [ -f "$p" ] || continue
      printf '\n----- %s (last 15 lines) -----\n' "$(basename "$p")"
      tail -n 15 "$p" || true
    done
  fi
  if [ -n "${E2E_KEEP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "hard timeout of ${HARD_TIMEOUT}s reached"; exit 124' TERM
( sleep "$HARD_TIMEOUT" & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM; wait $s && kill -TERM $$ 2>/dev/null ) &
WATCHDOG=$!
T_START=$(date +%s)

# start NAME CMD...: in the background, output to $TMP/logs/NAME.log
start() {
  local name="$1"; shift
  "$@" >"$TMP/logs/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
  # Killed by ha_check.py on purpose (a pod replaced, a replica killed): no job notice.
  # cleanup() still ends it by pid.
  disown "$!"
}
pid_of() {
  local i
  for i in "${!NAMES[@]}"; do
    if [ "${NAMES[$i]}" = "$1" ]; then echo "${PIDS[$i]}"; fi
  done
}
wait_http() {  # wait_http NAME URL: until URL answers 2xx (60 s), or NAME died
  local pid; pid="$(pid_of "$1")"
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 2 "$2" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "$1 exited before $2 answered"
    sleep 0.2
  done
  fail "$1: $2 did not answer within 60s"
}

# ---- ports
# All at once and distinct (a baseline run once lost alertmanager-b's cluster port to a
# clash: ports chosen one by one may repeat or sit in the ephemeral range).
mapfile -t PORTS < <(free_ports $((12 + SIDECARS)))
[ "${#PORTS[@]}" -eq $((12 + SIDECARS)) ] || fail "could not find $((12 + SIDECARS)) free ports"
P_SIM_H=${PORTS[0]}; P_SIM_E=${PORTS[1]}; P_SIM_C=${PORTS[2]}
P_EXP_E=${PORTS[3]}; P_EXP_C=${PORTS[4]}; P_WH=${PORTS[5]}
P_PROM_A=${PORTS[6]}; P_PROM_B=${PORTS[7]}
P_AM_A=${PORTS[8]}; P_AM_B=${PORTS[9]}; P_AMC_A=${PORTS[10]}; P_AMC_B=${PORTS[11]}
P_SIDE=("${PORTS[@]:12}")

# ---- rules: the fast thresholds, this set-up's selector, and NodeError fast enough to fire
# before the stall alerts, as it does with the production thresholds (4 min against 22 min).
# tests/e2e/overrides.jsonnet holds that override; run.sh renders it once for both runs.
if [ -n "${E2E_RULES:-}" ]; then
  cp "$E2E_RULES" "$TMP/rules.yaml"
else
  say "rendering alert rules (alerts/render.sh --config tests/e2e/overrides.jsonnet)"
  bash "$ROOT/alerts/render.sh" --config "$HERE/overrides.jsonnet" >"$TMP/rules.yaml"
fi
promtool check rules "$TMP/rules.yaml" >"$TMP/logs/promtool.log" 2>&1 || { cat "$TMP/logs/promtool.log"; fail "promtool check rules"; }

# ---- Alertmanager: the shipped inhibit_rules verbatim, a route like the shipped one with short
# waits, every notification to the webhook
{
  cat <<EOF
route:
  receiver: webhook
  group_by: ['alertname', 'job', 'namespace', 'cluster']
  group_wait: 2s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: http://$L:$P_WH/alerts
        send_resolved: true
EOF
  sed -n '/^inhibit_rules:/,/^[a-z_]*:/p' "$ROOT/alerts/alertmanager.example.yml" | sed '$d'
} >"$TMP/alertmanager.yml"
grep -q 'BitbucketZduNodeError' "$TMP/alertmanager.yml" || fail "no inhibit_rules taken from alerts/alertmanager.example.yml"
amtool check-config "$TMP/alertmanager.yml" >"$TMP/logs/amtool.log" 2>&1 || { cat "$TMP/logs/amtool.log"; fail "amtool check-config"; }

# ---- Prometheus: two replicas, identical but for the external label
cat >"$TMP/central.yml" <<EOF
targets:
  - name: central
    url: http://$L:$P_SIM_C
EOF
{
  for i in $(seq 0 $((SIDECARS - 1))); do
    cat <<EOF
- targets: ['$L:${P_SIDE[$i]}']
  labels:
    __meta_kubernetes_namespace: atlassian
    __meta_kubernetes_pod_name: bitbucket-$i
    __meta_kubernetes_pod_container_name: zdu-exporter
    __meta_kubernetes_pod_label_cluster: healthy12
    __meta_kubernetes_pod_label_controller_revision_hash: bitbucket-55c4d8f7d9
EOF
  done
} >"$TMP/pods.yml"
prom_config() {  # prom_config REPLICA
  cat <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
  external_labels: {replica: $1}
rule_files: ['$TMP/rules.yaml']
alerting:
  alert_relabel_configs:
    - {action: labeldrop, regex: replica}
  alertmanagers:
    - static_configs:
        - targets: ['$L:$P_AM_A', '$L:$P_AM_B']
scrape_configs:
  - job_name: bitbucket-zdu
    static_configs:
      - targets: ['$L:$P_EXP_E']
        labels: {cluster: error}
      - targets: ['$L:$P_EXP_C']
        labels: {cluster: central, instance: central/central, __metrics_path__: /probe, __param_target: central}
  - job_name: bitbucket-zdu-exporter
    static_configs:
      - targets: ['$L:$P_EXP_C']
  - job_name: kubernetes-pods
    file_sd_configs:
      - files: ['$TMP/pods.yml']
        refresh_interval: 1s
    relabel_configs:
      - {action: labelmap, regex: __meta_kubernetes_pod_label_(.+)}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}
EOF
}
prom_config a >"$TMP/prometheus-a.yml"
prom_config b >"$TMP/prometheus-b.yml"
promtool check config "$TMP/prometheus-a.yml" >>"$TMP/logs/promtool.log" 2>&1 || { cat "$TMP/logs/promtool.log"; fail "promtool check config"; }

# ---- start
say "starting: 3 simulators, $((SIDECARS + 2)) exporters, 2 Prometheus (:$P_PROM_A :$P_PROM_B), 2 Alertmanagers (:$P_AM_A :$P_AM_B, gossip :$P_AMC_A :$P_AMC_B), webhook :$P_WH"
start webhook python3 "$HERE/webhook.py" --listen "$L:$P_WH" --out "$TMP/webhook.jsonl"
start sim-healthy "$BIN" simulate --web.listen-address "$L:$P_SIM_H" --scenario rolling-upgrade --nodes "$SIDECARS" --speed "$SPEED"
start sim-error "$BIN" simulate --web.listen-address "$L:$P_SIM_E" --scenario node-error --speed "$SPEED"
start sim-central "$BIN" simulate --web.listen-address "$L:$P_SIM_C" --scenario stuck-mixed --speed "$SPEED"
EXP_FLAGS=(--poll.interval 1s --bitbucket.timeout 1s --log.level warn)
for i in $(seq 0 $((SIDECARS - 1))); do
  start "sidecar-$i" "$BIN" --bitbucket.url "http://$L:$P_SIM_H" --web.listen-address "$L:${P_SIDE[$i]}" "${EXP_FLAGS[@]}"
done
start exporter-error "$BIN" --bitbucket.url "http://$L:$P_SIM_E" --web.listen-address "$L:$P_EXP_E" "${EXP_FLAGS[@]}"
CENTRAL_CMD=("$BIN" --config.file "$TMP/central.yml" --state.file "$TMP/central.state" --web.listen-address "$L:$P_EXP_C" "${EXP_FLAGS[@]}")
start exporter-central "${CENTRAL_CMD[@]}"
for r in a b; do
  if [ "$r" = a ]; then me=$P_AMC_A; peer=$P_AMC_B; web=$P_AM_A; else me=$P_AMC_B; peer=$P_AMC_A; web=$P_AM_B; fi
  mkdir -p "$TMP/alertmanager-$r"
  start "alertmanager-$r" prometheus-alertmanager --config.file "$TMP/alertmanager.yml" \
    --storage.path "$TMP/alertmanager-$r" --web.listen-address "$L:$web" --web.external-url "http://$L:$web/" \
    --cluster.listen-address "$L:$me" --cluster.peer "$L:$peer" --cluster.advertise-address "$L:$me" --log.level=info
done
for r in a b; do
  if [ "$r" = a ]; then web=$P_PROM_A; else web=$P_PROM_B; fi
  mkdir -p "$TMP/prometheus-$r"
  start "prometheus-$r" prometheus --config.file "$TMP/prometheus-$r.yml" \
    --storage.tsdb.path "$TMP/prometheus-$r" --web.listen-address "$L:$web" \
    --web.external-url "http://$L:$web/" --storage.tsdb.retention.time 1h --log.level=info
done
wait_http webhook "http://$L:$P_WH/-/healthy"
for i in $(seq 0 $((SIDECARS - 1))); do wait_http "sidecar-$i" "http://$L:${P_SIDE[$i]}/-/healthy"; done
wait_http exporter-error "http://$L:$P_EXP_E/-/healthy"
wait_http exporter-central "http://$L:$P_EXP_C/-/healthy"
wait_http alertmanager-a "http://$L:$P_AM_A/-/ready"
wait_http alertmanager-b "http://$L:$P_AM_B/-/ready"
wait_http prometheus-a "http://$L:$P_PROM_A/-/ready"
wait_http prometheus-b "http://$L:$P_PROM_B/-/ready"
say "all up after $(( $(date +%s) - T_START ))s"

SIDECAR_ARGS=()
for i in $(seq 0 $((SIDECARS - 1))); do SIDECAR_ARGS+=(--sidecar "$(pid_of "sidecar-$i")=$L:${P_SIDE[$i]}"); done
python3 "$HERE/ha_check.py" \
  --prometheus "a=$(pid_of prometheus-a)=http://$L:$P_PROM_A" \
  --prometheus "b=$(pid_of prometheus-b)=http://$L:$P_PROM_B" \
  --alertmanager "a=$(pid_of alertmanager-a)=http://$L:$P_AM_A" \
  --alertmanager "b=$(pid_of alertmanager-b)=http://$L:$P_AM_B" \
  --webhook-log "$TMP/webhook.jsonl" \
  --file-sd "$TMP/pods.yml" \
  "${SIDECAR_ARGS[@]}" \
  --sidecar-cmd "$BIN --bitbucket.url http://$L:$P_SIM_H ${EXP_FLAGS[*]} --web.listen-address" \
  --healthy-sim "http://$L:$P_SIM_H" \
  --central "$(pid_of exporter-central)" \
  --central-state "$TMP/central.state" \
  --central-cmd "${CENTRAL_CMD[*]}" \
  --central-url "http://$L:$P_EXP_C" \
  --spawned "$TMP/spawned.pids" \
  --logs "$TMP/logs" \
  --deadline $(( HARD_TIMEOUT - ($(date +%s) - T_START) - 10 ))
say "finished in $(( $(date +%s) - T_START ))s after the build"
