#!/usr/bin/env bash
# Alert verification by simulation (issues 15 and 17: every product).
#
#   alerts/verify.sh [--count N] [--seed S] [--only I,J] [--rules FILE] [--alertmanager FILE]
#
# Generates N seeded rolling-upgrade timelines, a third each of Bitbucket, Confluence and Jira
# (2-12 nodes, drains, pauses, idle READY_TO_UPGRADE, approval delays, ghosts, sidecar per pod
# or central exporter, exporter restarts with and without state file, scrape failures, product
# outages, Confluence null node states, Jira lingering OFFLINE entries, and the faults), drives
# each through the exporter's own pipeline (simulator cluster model in the product's answer
# shapes -> decoding -> tracker/progress -> catalogue encoders with the product's prefix) under
# a virtual clock, renders what Prometheus would have scraped, lets promtool evaluate the rules
# (default: alerts/examples/all-products/alerts.yaml, every product's groups; its Bitbucket
# groups are the shipped alerts/bitbucket-zdu-alerts.yaml) at every minute, applies the
# inhibit_rules of alerts/alertmanager.example.yml and checks the invariants
# (docs/alerts-and-dashboards.md, "Verification by simulation").
# Last line: "alert-verify: N timelines, V violations"; exit 0 iff V is 0. A violation prints
# the seed, the timeline's event log and which alert fired when.
# Needs cargo and promtool (Debian package prometheus; alerts/test.sh installs it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v promtool >/dev/null || { echo "verify.sh: promtool not found (apt-get install -y prometheus)" >&2; exit 2; }
command -v cargo >/dev/null || { echo "verify.sh: cargo not found" >&2; exit 2; }
args=(--rules alerts/examples/all-products/alerts.yaml --alertmanager alerts/alertmanager.example.yml)
while [ $# -gt 0 ]; do
  case "$1" in
    --count|--seed|--rules|--alertmanager|--jobs|--batch|--keep|--only) args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "verify.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
cargo build --quiet --release --example alert_timelines
exec "$root/target/release/examples/alert_timelines" "${args[@]}"
