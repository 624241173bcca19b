#!/usr/bin/env bash
# Render the bitbucket-zdu monitoring mixin (alerts/mixin.libsonnet + alerts/config.libsonnet).
#
#   alerts/render.sh                         # rule file (recording + alerting rules), YAML, stdout
#   alerts/render.sh --config FILE           # FILE (JSON or jsonnet) deep-merged over _config
#   alerts/render.sh --config-json '{...}'   # same, inline
#   alerts/render.sh --json                  # the rule file as JSON
#   alerts/render.sh --prometheusrule        # the same rules as a Prometheus Operator PrometheusRule
#   alerts/render.sh --dashboard             # the Grafana dashboard JSON (first of _config.products)
#   alerts/render.sh --dashboard --product P # the dashboard of product P (bitbucket, confluence, jira)
#   alerts/render.sh --alertmanager          # example alertmanager.yml (the mixin's inhibit_rules)
#   alerts/render.sh --write                 # (re)write every checked-in rendered file
#   alerts/render.sh --check                 # fail if a checked-in rendered file differs
#
# Checked-in outputs: with the defaults (no --config) alerts/bitbucket-zdu-alerts.yaml,
# deploy/kubernetes/prometheusrule.yaml, dashboards/bitbucket-zdu-overview.json; with
# alerts/examples/all-products.json (_config.products: bitbucket, confluence, jira)
# alerts/alertmanager.example.yml (every product's inhibit rules),
# alerts/examples/all-products/alerts.yaml and the Confluence and Jira dashboards
# alerts/examples/all-products/{confluence,jira}-zdu-overview.json.
# YAML comes from jsonnet's own std.manifestYamlDoc (jsonnet -S): no converter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
config_args=()
product_args=()
what=rules
mode=stdout
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config_args=(--tla-code-file "config=$2"); shift 2 ;;
    --config-json) config_args=(--tla-code "config=$2"); shift 2 ;;
    --json) what=rules-json; shift ;;
    --prometheusrule) what=prometheusrule; shift ;;
    --dashboard) what=dashboard; shift ;;
    --product) product_args=(--tla-str "product=$2"); shift 2 ;;
    --alertmanager) what=alertmanager; shift ;;
    --write) mode="write"; shift ;;
    --check) mode="check"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "render.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v jsonnet >/dev/null || { echo "render.sh: jsonnet not found (apt-get install -y jsonnet)" >&2; exit 2; }
render() {  # render WHAT [config args...]
  local w="$1"; shift
  jsonnet -S -J "$here" --tla-str "what=$w" "$@" "$here/render.jsonnet"
}
if [ "$mode" = stdout ]; then
  render "$what" "${config_args[@]}" "${product_args[@]}"
  exit 0
fi
[ ${#config_args[@]} -eq 0 ] || { echo "render.sh: --write/--check render the defaults; no --config" >&2; exit 2; }
rc=0
all=alerts/examples/all-products.json
# WHAT FILE [CONFIG [PRODUCT]]
outputs=(
  "rules alerts/bitbucket-zdu-alerts.yaml"
  "prometheusrule deploy/kubernetes/prometheusrule.yaml"
  "dashboard dashboards/bitbucket-zdu-overview.json"
  "alertmanager alerts/alertmanager.example.yml $all"
  "rules alerts/examples/all-products/alerts.yaml $all"
  "dashboard alerts/examples/all-products/confluence-zdu-overview.json $all confluence"
  "dashboard alerts/examples/all-products/jira-zdu-overview.json $all jira"
)
for line in "${outputs[@]}"; do
  read -r w rel conf prod <<<"$line"
  f="$root/$rel"
  args=()
  [ -z "${conf:-}" ] || args+=(--tla-code-file "config=$root/$conf")
  [ -z "${prod:-}" ] || args+=(--tla-str "product=$prod")
  if [ "$mode" = write ]; then
    mkdir -p "$(dirname "$f")"
    render "$w" "${args[@]}" > "$f"
  elif ! diff -u "$f" <(render "$w" "${args[@]}") >/dev/null; then
    echo "$rel is out of date: run alerts/render.sh --write"; rc=1
  fi
done
exit $rc
