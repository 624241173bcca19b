#!/usr/bin/env bash
# Self-contained checks for alerts/ and dashboards/ (run from anywhere):
#   1. installs promtool (Debian package "prometheus") and jsonnet if missing
#   2. drift: re-renders alerts/bitbucket-zdu-alerts.yaml, the promtool tests and the
#      dashboards from their sources and fails if the checked-in files differ
#   3. promtool check rules + promtool test rules
#   4. dashboard lint (static rules) + the lint's own self-test
# Exit status is non-zero if anything failed; a summary is printed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DEBIAN_FRONTEND=noninteractive

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v jsonnet >/dev/null 2>&1 || need+=(jsonnet)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
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

drift_rules() {
  alerts/render.sh > "$tmp/rules.yaml"
  diff -u alerts/bitbucket-zdu-alerts.yaml "$tmp/rules.yaml" || {
    echo "alerts/bitbucket-zdu-alerts.yaml is out of date: run alerts/render.sh > alerts/bitbucket-zdu-alerts.yaml"; return 1; }
}
drift_dashboards() {
  dashboards/render.sh --check
}
test_rules() {
  local rc=0
  for f in alerts/tests/*.test.yaml; do
    promtool test rules "$f" || rc=1
  done
  return $rc
}
lint_dashboards() {
  alerts/render.sh --json > "$tmp/rules.json"
  python3 dashboards/lint.py --rules "$tmp/rules.json" dashboards/*.json
}

step "rules rendered from alerts/rules.jsonnet are up to date" drift_rules
step "promtool tests generated from alerts/tests/generate.py are up to date" python3 alerts/tests/generate.py --check
step "dashboards rendered from dashboards/src are up to date" drift_dashboards
step "promtool check rules" promtool check rules alerts/bitbucket-zdu-alerts.yaml
step "promtool test rules ($(ls alerts/tests/*.test.yaml | wc -l) files)" test_rules
step "rendering with threshold overrides (alerts/examples/fast-thresholds.json) passes promtool check" \
  bash -c 'alerts/render.sh --config alerts/examples/fast-thresholds.json > "$0/fast.yaml" && promtool check rules "$0/fast.yaml"' "$tmp"
step "every alert has severity, for:, annotations, a runbook section and a docs row" python3 alerts/tools/check_docs.py
step "dashboard lint (static rules)" lint_dashboards
step "dashboard lint self-test (every rule can fail)" python3 dashboards/test_lint.py

echo
echo "alerts/test.sh: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  printf '  failed: %s\n' "${failures[@]}"
  exit 1
fi
