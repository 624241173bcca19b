#!/usr/bin/env bash
# Render dashboards/src/*.jsonnet to dashboards/<name>.json (the files Grafana loads).
#   dashboards/render.sh          # rewrite the JSON files
#   dashboards/render.sh --check  # fail if a checked-in JSON file differs from its source
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check=false
[ "${1:-}" = "--check" ] && check=true
command -v jsonnet >/dev/null || { echo "render.sh: jsonnet not found (apt-get install -y jsonnet)" >&2; exit 2; }
rc=0
for src in "$here"/src/*.jsonnet; do
  name="$(basename "$src" .jsonnet)"
  out="$(jsonnet "$src" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), indent=2, sort_keys=False))')"
  if $check; then
    if ! diff -u "$here/$name.json" <(printf '%s\n' "$out") >/dev/null 2>&1; then
      echo "dashboards/$name.json is out of date: run dashboards/render.sh"; rc=1
    fi
  else
    printf '%s\n' "$out" > "$here/$name.json"
  fi
done
exit $rc
