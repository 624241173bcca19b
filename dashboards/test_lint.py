#!/usr/bin/env python3
"""Self-test of dashboards/lint.py: the real dashboards pass, and every lint rule can fail.

Three kinds of proof:
  * testdata/broken-dashboard.json violates every rule at once; each rule must be reported;
  * single mutations of the real dashboard (one defect each) must be caught by exactly the
    rule that targets that defect;
  * seeded mutations of the Confluence/Jira dashboards and rules of the all-products rendering
    (alerts/examples/all-products/) reading a family the product lacks, or two products.
Needs promql-parser and PyYAML (alerts/test.sh installs them); prints "N passed, M failed".
"""
import copy
import glob
import io
import json
import os
import sys
import tempfile
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lint  # noqa: E402

# The mixin's rules (lint.py without --rules renders them: half a minute) are rendered once.
_load_rules, _mixin_rules = lint.load_rules, []


def load_rules_once(path):
    if path is not None:
        return _load_rules(path)
    if not _mixin_rules:
        _mixin_rules.append(_load_rules(None))
    return _mixin_rules[0]


lint.load_rules = load_rules_once

REAL = sorted(glob.glob(os.path.join(HERE, "*.json")))
TD = os.path.join(HERE, "testdata")
results = []


def run(args):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = lint.main(args)
    return rc, buf.getvalue()


def check(name, cond, detail=""):
    results.append((name, cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "\n" + detail))


def rules_in(out):
    return {line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if ": [" in line}


# 1. the real dashboards pass (against the metric contract docs/metrics.json)
rc, out = run(REAL)
check("real dashboards pass the lint", rc == 0, out)

# 2. the broken fixture trips every rule
rc, out = run([os.path.join(TD, "broken-dashboard.json")])
want = {"uid", "title", "description", "datasource", "selector-vars", "rate-interval", "metrics"}
check("broken fixture fails", rc == 1, out)
check("broken fixture reports every rule %s" % sorted(want), want <= rules_in(out),
      "missing: %s\n%s" % (sorted(want - rules_in(out)), out))
for needle in ["must equal the file name", "top-level id must be null", "panel id missing or duplicated",
               "no `instance` template variable", "rate() must use [$__rate_interval], not [5m]",
               "increase() must use [$__rate_interval], not [1h]", "metric 'node_load1'",
               "metric 'node_uname_info'", "panel must use the ${datasource} variable",
               "target must use the ${datasource} variable", "dashboard has no description"]:
    check("broken fixture: %s" % needle, needle in out, out)

# 3. metrics mode: names must come from the exposition files (union), histogram suffixes
broken_metrics = {
    "uid": "m", "id": None, "title": "t", "description": "d",
    "templating": {"list": [{"type": "datasource", "name": "datasource", "query": "prometheus"},
                            {"type": "query", "name": "job", "datasource": {"uid": "${datasource}"},
                             "query": "label_values(bitbucket_zdu_up, job)"},
                            {"type": "query", "name": "instance", "datasource": {"uid": "${datasource}"},
                             "query": "label_values(bitbucket_zdu_up{job=~\"$job\"}, instance)"}]},
    "panels": [{"type": "timeseries", "id": 1, "title": "p", "description": "d",
                "datasource": {"uid": "${datasource}"},
                "targets": [{"refId": "A", "datasource": {"uid": "${datasource}"}, "expr":
                             'histogram_quantile(0.9, sum by (le) (rate(bitbucket_zdu_poll_latency_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))'
                             ' + bitbucket_zdu_poll_latency_seconds{job=~"$job", instance=~"$instance"}'
                             ' + bitbucket_zdu_last_error_info{job=~"$job", instance=~"$instance"}'
                             ' + bitbucket_zdu_upgrade_mode_enabled{job=~"$job", instance=~"$instance"}'}]}],
}
with tempfile.TemporaryDirectory() as tmp:
    p = os.path.join(tmp, "m.json")
    with open(p, "w") as f:
        json.dump(broken_metrics, f)
    m1, m2 = os.path.join(TD, "metrics-cluster.txt"), os.path.join(TD, "metrics-down.txt")
    rc, out = run(["--metrics", m1, p])
    check("metrics: name missing from the only file is reported", "bitbucket_zdu_last_error_info" in out, out)
    check("metrics: histogram _bucket accepted, bare histogram name rejected",
          "'bitbucket_zdu_poll_latency_seconds_bucket'" not in out and "'bitbucket_zdu_poll_latency_seconds'" in out, out)
    rc, out = run(["--metrics", m1, "--metrics", m2, p])
    check("metrics: several --metrics files are a union",
          "bitbucket_zdu_last_error_info" not in out and "'bitbucket_zdu_poll_latency_seconds'" in out and rc == 1, out)

    # 4. one defect at a time in the real dashboard
    base = json.load(open(REAL[0]))
    stem = os.path.splitext(os.path.basename(REAL[0]))[0]

    def first_target(d):
        return next(pp for pp in d["panels"] if pp.get("targets"))

    def mut_uid(d): d["uid"] = "a1B2c3D4"
    def mut_uid_missing(d): d.pop("uid")
    def mut_title(d): first_target(d)["title"] = ""
    def mut_desc(d): first_target(d)["description"] = " "
    def mut_ds_panel(d): first_target(d)["datasource"] = {"type": "prometheus", "uid": "prom-prod"}
    def mut_ds_target(d): first_target(d)["targets"][0]["datasource"] = "Prometheus"
    def mut_ds_var(d): d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "datasource"]
    def mut_sel(d): first_target(d)["targets"][0]["expr"] = "max by (job, namespace, cluster) (bitbucket_zdu_upgrade_mode_enabled)"
    def mut_sel_instance(d): first_target(d)["targets"][0]["expr"] = 'max by (job, namespace, cluster) (bitbucket_zdu_upgrade_mode_enabled{job=~"$job"})'
    def mut_cluster_by(d): first_target(d)["targets"][0]["expr"] = 'max by (job, state) (bitbucket_zdu:cluster_state:max{job=~"$job"})'
    def mut_cluster_sum(d): first_target(d)["targets"][0]["expr"] = 'sum(bitbucket_zdu:nodes:max{job=~"$job"})'

    def time_in_state(d):
        return next(pp for pp in d["panels"] if pp.get("title") == "Time in current state")

    def mut_stable_red(d):
        for o in time_in_state(d)["fieldConfig"]["overrides"]:
            if "STABLE" in o["matcher"]["options"]:
                o["properties"][0]["value"]["steps"].append({"color": "red", "value": 3600})
    def mut_no_state_colours(d): time_in_state(d)["fieldConfig"]["overrides"] = []
    def mut_promql(d): first_target(d)["targets"][0]["expr"] = 'max by (job, namespace, cluster) (bitbucket_zdu_up{job=~"$job", instance=~"$instance"}'

    def mut_rate(d):
        for pp in d["panels"]:
            for t in pp.get("targets", []):
                t["expr"] = t["expr"].replace("$__rate_interval", "5m")
    def mut_metric(d): first_target(d)["targets"][0]["expr"] = 'bitbucket_zdu_clusterstate{job=~"$job", instance=~"$instance"}'

    cases = [("uid", mut_uid, "uid"), ("uid", mut_uid_missing, "uid"), ("title", mut_title, "title"),
             ("description", mut_desc, "description"), ("datasource", mut_ds_panel, "datasource"),
             ("datasource", mut_ds_target, "datasource"), ("datasource", mut_ds_var, "datasource"),
             ("selector-vars", mut_sel, "selector-vars"), ("selector-vars", mut_sel_instance, "selector-vars"),
             ("rate-interval", mut_rate, "rate-interval"), ("cluster-by", mut_cluster_by, "cluster-by"),
             ("cluster-by", mut_cluster_sum, "cluster-by"), ("state-colour", mut_stable_red, "state-colour"),
             ("state-colour", mut_no_state_colours, "state-colour"), ("promql", mut_promql, "promql")]
    for rule, fn, expect_rule in cases:
        d = copy.deepcopy(base)
        fn(d)
        p = os.path.join(tmp, stem + ".json")
        with open(p, "w") as f:
            json.dump(d, f)
        rc, out = run([p])
        check("mutation %s caught by [%s] only" % (fn.__name__, expect_rule),
              rc == 1 and rules_in(out) == {expect_rule}, out)
    d = copy.deepcopy(base)
    mut_metric(d)
    p = os.path.join(tmp, stem + ".json")
    with open(p, "w") as f:
        json.dump(d, f)
    rc, out = run(["--metrics", m1, "--metrics", m2, p])
    check("mutation mut_metric caught by [metrics] against real-style exposition files",
          "'bitbucket_zdu_clusterstate'" in out, out)

# 5. products: the Confluence and Jira dashboards and rules of the all-products rendering read
#    only families docs/metrics.json lists for their product, never two products at once
ALL = os.path.join(os.path.dirname(HERE), "alerts", "examples", "all-products")
ALL_RULES = os.path.join(ALL, "alerts.yaml")
PRODUCT_DASHBOARDS = sorted(glob.glob(os.path.join(ALL, "*.json")))
rc, out = run(["--rules", ALL_RULES] + PRODUCT_DASHBOARDS + REAL)
check("product dashboards and the all-products rules pass the lint (%d dashboards)"
      % len(PRODUCT_DASHBOARDS + REAL), rc == 0 and len(PRODUCT_DASHBOARDS) == 2, out)
with tempfile.TemporaryDirectory() as tmp:
    import yaml
    jira_path = next(p for p in PRODUCT_DASHBOARDS if os.path.basename(p).startswith("jira-"))
    jira = json.load(open(jira_path))

    def jira_mutant(expr):
        d = copy.deepcopy(jira)
        next(pp for pp in d["panels"] if pp.get("targets"))["targets"][0]["expr"] = expr
        p = os.path.join(tmp, os.path.basename(jira_path))
        with open(p, "w") as f:
            json.dump(d, f)
        return run(["--rules", ALL_RULES, p])

    sel = '{job=~"$job", cluster=~"$cluster", instance=~"$instance"}'
    rc, out = jira_mutant("max by (job, namespace, cluster, node_name) (jira_zdu_node_active_users%s)" % sel)
    check("mutation: a Jira panel reading users per node (Jira has none) caught by [metrics] only",
          rc == 1 and rules_in(out) == {"metrics"} and "'jira_zdu_node_active_users'" in out, out)
    rc, out = jira_mutant("max by (job, namespace, cluster) (confluence_zdu_up%s)" % sel)
    check("mutation: a Jira dashboard reading a Confluence family caught by [metrics] only",
          rc == 1 and rules_in(out) == {"metrics"} and "several products: confluence, jira" in out, out)

    groups = yaml.safe_load(open(ALL_RULES))["groups"]

    def rules_mutant(name, fn):
        g = copy.deepcopy(groups)
        rule = next(r for gg in g for r in gg["rules"] if (r.get("alert") or r.get("record")) == name)
        rule["expr"] = fn(rule["expr"])
        p = os.path.join(tmp, "rules.json")
        with open(p, "w") as f:
            json.dump({"groups": g}, f)
        return run(["--rules", p] + PRODUCT_DASHBOARDS)

    rc, out = rules_mutant("JiraZduNodeNoHeartbeat", lambda e: e.replace("jira_zdu_node_alive", "jira_zdu_node_active_tasks"))
    check("mutation: a Jira rule reading tasks per node caught by [metrics]",
          rc == 1 and "rule JiraZduNodeNoHeartbeat: metric 'jira_zdu_node_active_tasks'" in out, out)
    rc, out = rules_mutant("JiraZduUpgradeStuckMixed", lambda e: e + " unless on (job) jira_zdu:draining_node_work:max")
    check("mutation: a Jira rule reading a recording rule Jira does not have caught by [metrics]",
          rc == 1 and "'jira_zdu:draining_node_work:max'" in out, out)
    rc, out = rules_mutant("ConfluenceZduNodeFinalizationFailed", lambda e: e + " or jira_zdu_node_alive")
    check("mutation: a rule mixing Confluence and Jira families caught by [metrics]",
          rc == 1 and "rule ConfluenceZduNodeFinalizationFailed: mixes the metrics of confluence, jira" in out, out)

passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
