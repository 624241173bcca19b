#!/usr/bin/env python3
"""Every alert has a runbook section (its runbook_url anchor) and a row in the docs table.

Bitbucket's alerts come from the default rendering (plus the opt-in BitbucketZduExporterAbsent);
the other products' from the checked-in all-products rendering
(alerts/examples/all-products/alerts.yaml, kept current by alerts/render.sh --check). Each
runbook_url must name a docs/ file of this repository and an anchor (a "## Name" heading)
that exists in it. A derived alert (the Bitbucket alert of the same name exists) is documented
by the Bitbucket row; an alert only one product has needs its own row.
"""
import json
import os
import re
import subprocess
import sys

import yaml

PRODUCT_NAMES = ("Confluence", "Jira")


def render_json(*extra):
    out = subprocess.run(["alerts/render.sh", "--json", *extra], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["groups"]


def anchors_of(path, cache={}):  # noqa: B006 - a per-run cache
    if path not in cache:
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        cache[path] = {h.lower() for h in re.findall(r"^## (\S+)\s*$", text, re.M)}
    return cache[path]


def main():
    groups = render_json()
    optin = render_json("--config-json", '{"exporterAbsent": {"clusters": [{"job": "x"}]}}')
    with open("alerts/examples/all-products/alerts.yaml", encoding="utf-8") as f:
        products = yaml.safe_load(f)["groups"]
    rules = {r["alert"]: r for g in groups + optin + products for r in g["rules"] if "alert" in r}
    bitbucket = {a for a in rules if a.startswith("BitbucketZdu")}
    table = open("docs/alerts-and-dashboards.md", encoding="utf-8").read()
    bad = []
    for a, r in sorted(rules.items()):
        url = r["annotations"].get("runbook_url", "")
        m = re.search(r"/blob/[^/]+/(docs/[^#]+\.md)#(.+)$", url)
        if not m:
            bad.append("%s: runbook_url %r does not name a docs/*.md file and anchor" % (a, url))
        elif m.group(2) not in anchors_of(m.group(1)):
            bad.append("%s: runbook_url anchor #%s has no section in %s" % (a, m.group(2), m.group(1)))
        base = a
        for name in PRODUCT_NAMES:
            if a.startswith(name + "Zdu"):
                base = a.replace(name, "Bitbucket")
        documented = base if base in bitbucket else a
        if not re.search(r"^\| %s \|" % documented, table, re.M):
            bad.append("%s: missing from the alert table in docs/alerts-and-dashboards.md" % documented)
        for k in ("summary", "description", "runbook_url"):
            if not r["annotations"].get(k):
                bad.append("%s: no %s annotation" % (a, k))
        if r["labels"].get("severity") not in ("critical", "warning", "info"):
            bad.append("%s: severity must be critical|warning|info" % a)
        if not r.get("for"):
            bad.append("%s: no for: window" % a)
    bad = sorted(set(bad))
    print("\n".join(bad) or "%d alerts documented (%d Bitbucket, %d other products)"
          % (len(rules), len(bitbucket), len(rules) - len(bitbucket)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
