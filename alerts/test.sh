#!/usr/bin/env bash
# Self-contained checks of the monitoring mixin in alerts/ (rules, dashboard) (run from anywhere):
#   1. installs promtool (Debian package "prometheus"), jsonnet and python3-yaml if missing
#   2. drift: re-renders alerts/bitbucket-zdu-alerts.yaml, deploy/kubernetes/prometheusrule.yaml,
#      dashboards/bitbucket-zdu-overview.json and the promtool test files from their sources
#      and fails if the checked-in files differ
#   3. promtool check rules (rule file, the PrometheusRule's groups, an override rendering)
#   4. promtool test rules: the stories in alerts/tests/src (one per defect of issue 8, ...)
#   5. docs cover every alert; dashboard lint (+ promtool on every query) and its self-test
#   6. amtool check-config on alerts/alertmanager.example.yml (the mixin's inhibit_rules)
#   7. alerts/verify.sh --count 32 --seed 1: generated upgrade timelines through the exporter's
#      pipeline, every invariant on the shipped rules (covers every generator branch)
# Exit status is non-zero if anything failed; a summary is printed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DEBIAN_FRONTEND=noninteractive

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v jsonnet >/dev/null 2>&1 || need+=(jsonnet)
python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq </dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }

passed=0; failed=0; failures=()
step() {  # step NAME CMD...
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then
    passed=$((passed + 1)); echo "ok   - $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "FAIL - $name"; printf '%s\n' "$out" | sed 's/^/       /' | head -200
  fi
}

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

test_rules() {
  local rc=0
  for f in alerts/tests/*.test.yaml; do
    promtool test rules "$f" || rc=1
  done
  return $rc
}
check_prometheusrule() {
  # The PrometheusRule carries exactly the rule file's groups; promtool checks them.
  python3 - "$tmp/pr-groups.yaml" <<'PY'
import sys, yaml
pr = yaml.safe_load(open("deploy/kubernetes/prometheusrule.yaml"))
rules = yaml.safe_load(open("alerts/bitbucket-zdu-alerts.yaml"))
assert pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["kind"] == "PrometheusRule", pr.get("kind")
assert pr["metadata"]["name"] and pr["metadata"]["labels"], "metadata.name and labels"
assert pr["spec"]["groups"] == rules["groups"], "PrometheusRule groups differ from the rule file"
yaml.safe_dump({"groups": pr["spec"]["groups"]}, open(sys.argv[1], "w"))
PY
  promtool check rules "$tmp/pr-groups.yaml"
}
keep_firing_supported() {
  # Prometheus >= 2.42 understands keep_firing_for; story 5 proves it works. Fail loudly on
  # an older promtool instead of silently testing without it.
  promtool --version 2>&1 | head -1
  grep -q 'keep_firing_for' alerts/bitbucket-zdu-alerts.yaml
  promtool check rules alerts/bitbucket-zdu-alerts.yaml
}

step "rendered files are up to date (alerts/render.sh --check)" alerts/render.sh --check
step "promtool tests generated from alerts/tests/src are up to date" python3 alerts/tests/generate.py --check
step "promtool check rules" promtool check rules alerts/bitbucket-zdu-alerts.yaml
step "promtool accepts keep_firing_for (Prometheus >= 2.42)" keep_firing_supported
step "deploy/kubernetes/prometheusrule.yaml is a PrometheusRule with the same groups" check_prometheusrule
step "promtool test rules ($(ls alerts/tests/*.test.yaml | wc -l) story files)" test_rules
step "rendering with threshold overrides (alerts/examples/fast-thresholds.json) passes promtool check" \
  bash -c 'alerts/render.sh --config alerts/examples/fast-thresholds.json > "$0/fast.yaml" && promtool check rules "$0/fast.yaml"' "$tmp"
step "every alert has severity, for:, annotations, a runbook section and a docs row" python3 alerts/tools/check_docs.py
step "dashboard lint (contract docs/metrics.json, cluster labels, promtool on every query)" python3 dashboards/lint.py dashboards/*.json
step "dashboard lint self-test (every rule can fail)" python3 dashboards/test_lint.py
step "amtool check-config alerts/alertmanager.example.yml (inhibit_rules)" amtool check-config alerts/alertmanager.example.yml
step "alerts/verify.sh --count 32 --seed 1 (alert verification by simulation)" alerts/verify.sh --count 32 --seed 1

echo
echo "alerts/test.sh: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  printf '  failed: %s\n' "${failures[@]}"
  exit 1
fi
