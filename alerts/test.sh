#!/usr/bin/env bash
# Self-contained checks of the monitoring mixin in alerts/ (rules, dashboard) (run from anywhere):
#   1. installs promtool (Debian package "prometheus"), jsonnet, amtool and python3-yaml if
#      missing, and promql-parser from PyPI for the dashboard lint (scripts/lib.sh need_commands /
#      need_python_modules)
#   2. drift: re-renders alerts/bitbucket-zdu-alerts.yaml, deploy/kubernetes/prometheusrule.yaml,
#      dashboards/bitbucket-zdu-overview.json, the all-products example (alerts/examples/
#      all-products/: rules, Confluence and Jira dashboards; alertmanager.example.yml) and the
#      promtool test files from their sources and fails if the checked-in files differ
#   3. promtool check rules (rule file, the PrometheusRule's groups, an override rendering, the
#      all-products rendering; Bitbucket's groups identical in it)
#   4. promtool test rules: the stories in alerts/tests/src (one per defect of issue 8, ...)
#   5. docs cover every alert (every product's runbook_url anchor exists); dashboard lint (+
#      promtool on every query; every metric of a product's rules and dashboard exists for that
#      product) and its self-test
#   6. amtool check-config on alerts/alertmanager.example.yml (the mixin's inhibit_rules)
#   7. alerts/verify.sh --count 48 --seed 1: generated upgrade timelines of every product
#      through the exporter's pipeline, every invariant on the shipped all-products rules
#      (48 consecutive seeds: every product with every fault and healthy slot, every branch)
# Exit status is non-zero if anything failed; a summary is printed at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
STEP_PREFIX=alerts/test.sh
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
need_commands promtool=prometheus jsonnet=jsonnet amtool=prometheus-alertmanager python3=python3
need_python_modules yaml=python3-yaml=PyYAML promql_parser==promql-parser==0.12.0

passed=0; failed=0; failures=()
check() {  # check NAME CMD...: runs one check, prints "ok" or "FAIL" and its output
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
fast_thresholds_check() {
  alerts/render.sh --config alerts/examples/fast-thresholds.json > "$tmp/fast.yaml"
  promtool check rules "$tmp/fast.yaml"
}
keep_firing_supported() {
  # Prometheus >= 2.42 understands keep_firing_for; story 5 proves it works. Fail loudly on
  # an older promtool instead of silently testing without it.
  promtool --version 2>&1 | head -1
  grep -q 'keep_firing_for' alerts/bitbucket-zdu-alerts.yaml
  promtool check rules alerts/bitbucket-zdu-alerts.yaml
}

bitbucket_unchanged() {
  # The products layer never touches Bitbucket: the all-products rendering carries exactly the
  # default rendering's groups (alerts/render.sh --check keeps both files current).
  python3 - <<'PY'
import yaml
default = yaml.safe_load(open("alerts/bitbucket-zdu-alerts.yaml"))["groups"]
every = yaml.safe_load(open("alerts/examples/all-products/alerts.yaml"))["groups"]
names = {g["name"] for g in default}
assert [g for g in every if g["name"] in names] == default, "Bitbucket groups differ"
others = [g["name"] for g in every if g["name"] not in names]
assert others == ["confluence-zdu.rules", "jira-zdu.rules", "confluence-zdu", "jira-zdu"], others
print("Bitbucket groups identical; other groups:", ", ".join(others))
PY
}

check "rendered files are up to date (alerts/render.sh --check)" alerts/render.sh --check
check "promtool tests generated from alerts/tests/src are up to date" python3 alerts/tests/generate.py --check
check "promtool check rules" promtool check rules alerts/bitbucket-zdu-alerts.yaml
check "promtool accepts keep_firing_for (Prometheus >= 2.42)" keep_firing_supported
check "deploy/kubernetes/prometheusrule.yaml is a PrometheusRule with the same groups" check_prometheusrule
stories=(alerts/tests/*.test.yaml)
check "promtool test rules (${#stories[@]} story files)" test_rules
check "rendering with threshold overrides (alerts/examples/fast-thresholds.json) passes promtool check" \
  fast_thresholds_check
check "every alert has severity, for:, annotations, a runbook section and a docs row" python3 alerts/tools/check_docs.py
check "all-products rendering (alerts/examples/all-products/alerts.yaml) passes promtool check rules" \
  promtool check rules alerts/examples/all-products/alerts.yaml
check "Bitbucket's groups are the same with other products rendered beside them" bitbucket_unchanged
check "dashboard lint (contract docs/metrics.json, cluster labels, promtool on every query)" python3 dashboards/lint.py dashboards/*.json
check "product dashboards and all-products rules: every metric exists for its product (docs/metrics.json)" \
  python3 dashboards/lint.py --rules alerts/examples/all-products/alerts.yaml alerts/examples/all-products/*.json
check "dashboard lint self-test (every rule can fail)" python3 dashboards/test_lint.py
check "amtool check-config alerts/alertmanager.example.yml (inhibit_rules)" amtool check-config alerts/alertmanager.example.yml
check "alerts/verify.sh --count 48 --seed 1 (alert verification by simulation, every product)" alerts/verify.sh --count 48 --seed 1

echo
echo "alerts/test.sh: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  printf '  failed: %s\n' "${failures[@]}"
  exit 1
fi
