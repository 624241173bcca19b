#!/usr/bin/env python3
"""Every alert has a runbook section (its runbook_url anchor) and a row in the docs table."""
import json
import re
import subprocess
import sys

groups = json.loads(subprocess.run(["alerts/render.sh", "--json"], capture_output=True, text=True,
                                   check=True).stdout)["groups"]
# Every alert, including the opt-in BitbucketZduExporterAbsent (rendered with one listed cluster).
optin = json.loads(subprocess.run(
    ["alerts/render.sh", "--json", "--config-json", '{"exporterAbsent": {"clusters": [{"job": "x"}]}}'],
    capture_output=True, text=True, check=True).stdout)["groups"]
rules = {r["alert"]: r for g in groups + optin for r in g["rules"] if "alert" in r}.values()
runbooks = open("docs/runbooks.md", encoding="utf-8").read()
table = open("docs/alerts-and-dashboards.md", encoding="utf-8").read()
anchors = {h.lower() for h in re.findall(r"^## (\S+)\s*$", runbooks, re.M)}
bad = []
for r in rules:
    a = r["alert"]
    anchor = r["annotations"]["runbook_url"].rsplit("#", 1)[-1]
    if anchor not in anchors:
        bad.append("%s: runbook_url anchor #%s has no section in docs/runbooks.md" % (a, anchor))
    if not re.search(r"^\| %s \|" % a, table, re.M):
        bad.append("%s: missing from the alert table in docs/alerts-and-dashboards.md" % a)
    for k in ("summary", "description", "runbook_url"):
        if not r["annotations"].get(k):
            bad.append("%s: no %s annotation" % (a, k))
    if r["labels"].get("severity") not in ("critical", "warning", "info"):
        bad.append("%s: severity must be critical|warning|info" % a)
    if not r.get("for"):
        bad.append("%s: no for: window" % a)
print("\n".join(bad) or "%d alerts documented" % len(rules))
sys.exit(1 if bad else 0)
