#!/usr/bin/env python3
"""Turn the readable story sources in alerts/tests/src/*.yaml into promtool test files.

A source is a `promtool test rules` file written by hand as a timeline (comments say what
happens when), with two additions this script resolves:

  * every `exp_alerts` entry has a `value:` (the alert's value at eval_time); the script
    replaces it with the `exp_annotations` Prometheus will render from the rule's templates
    (so a source never repeats the long annotation texts, and an annotation change does not
    need hand edits). The template stand-in below knows only the constructs the rules use.
  * every input series is checked against the metric contract docs/metrics.json: its name
    must be an exporter metric (or `up`) and its labels must be that metric's labels plus
    target labels. A story cannot feed the rules a series the exporter does not emit.

There is no model of Bitbucket here: a story says what the exporters report, minute by
minute; the rules under test (alerts/render.sh --json, or the file named in the source's
rule_files) decide the rest.

    python3 alerts/tests/generate.py            # (re)write alerts/tests/*.test.yaml
    python3 alerts/tests/generate.py --check    # fail if they differ (alerts/test.sh)

Needs python3-yaml (PyYAML).
"""
import glob
import json
import os
import re
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ALERTS = os.path.dirname(HERE)
ROOT = os.path.dirname(ALERTS)
# Labels a scrape adds (target labels, kubernetes-pods relabelling) besides the exporter's own.
TARGET_LABELS = {"job", "instance", "namespace", "cluster", "pod", "controller_revision_hash",
                 "statefulset_kubernetes_io_pod_name", "app_kubernetes_io_name", "container"}
PROMETHEUS_SERIES = {"up": []}


PRODUCT_PREFIXES = {"bitbucket": "bitbucket_zdu", "confluence": "confluence_zdu", "jira": "jira_zdu"}
DEFAULT_RULES = "../bitbucket-zdu-alerts.yaml"


def contract():
    """Series names and labels per docs/metrics.json, each product's under its own prefix (a
    family of several products is named bitbucket_zdu_* there; one of no product, the
    exporter's own, keeps its name)."""
    with open(os.path.join(ROOT, "docs", "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)["metrics"]
    known = {}
    for m in metrics:
        products = m.get("products") or []
        if not products:
            known[m["name"]] = set(m["labels"])
        for p in products:
            name = m["name"]
            if name.startswith("bitbucket_zdu_"):
                name = name.replace("bitbucket_zdu", PRODUCT_PREFIXES[p], 1)
            known[name] = set(m["labels"])
    known.update({k: set(v) for k, v in PROMETHEUS_SERIES.items()})
    return known


RENDERED = {}


def rules_json(source):
    """Alerting rules by name, from the rule file the source tests: rendered with the source's
    x-render-config (one jsonnet run per distinct override: rendering is slow on a loaded
    machine), else the checked-in rendered file its rule_files names
    (../bitbucket-zdu-alerts.yaml, ../examples/all-products/alerts.yaml; alerts/render.sh
    --check, run before this by alerts/test.sh, keeps them current)."""
    extra = source.get("x-render-config")
    files = source.get("rule_files") or [DEFAULT_RULES]
    if extra is None:
        with open(os.path.join(HERE, files[0]), encoding="utf-8") as f:
            groups = yaml.safe_load(f)["groups"]
        return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    key = json.dumps(extra, sort_keys=True)
    if key not in RENDERED:
        RENDERED[key] = render_rules(extra)
    return RENDERED[key]


def render_rules(extra):
    cmd = [os.path.join(ALERTS, "render.sh"), "--json"]
    if extra is not None:
        cmd += ["--config-json", json.dumps(extra)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {r["alert"]: r for g in json.loads(out)["groups"] for r in g["rules"] if "alert" in r}


CLUSTER_NAME = json.loads(subprocess.run(
    ["jsonnet", "-J", ALERTS, "-e", "(import 'config.libsonnet')._config.clusterName"],
    check=True, capture_output=True, text=True).stdout)


# ------------------------------------------------------------------ Go-template stand-in
def humanize_duration(v):
    if v < 1:
        raise ValueError("sub-second durations are not used in these tests")
    iv = int(v)
    s, mi, h, d = iv % 60, (iv // 60) % 60, (iv // 3600) % 24, iv // 86400
    if d:
        return "%dd %dh %dm %ds" % (d, h, mi, s)
    if h:
        return "%dh %dm %ds" % (h, mi, s)
    if mi:
        return "%dm %ds" % (mi, s)
    return "%.4gs" % v


def render(template, labels, value):
    name = labels.get("cluster") or labels.get("job", "")
    if labels.get("namespace"):
        name += " (namespace %s)" % labels["namespace"]
    out = template.replace(CLUSTER_NAME, name)
    out = re.sub(r'\{\{ if eq \$labels\.(\w+) "([^"]*)" \}\}(.*?)\{\{ else \}\}(.*?)\{\{ end \}\}',
                 lambda mo: mo.group(3) if labels.get(mo.group(1)) == mo.group(2) else mo.group(4),
                 out)
    if "{{ $value | humanizeDuration }}" in out:
        out = out.replace("{{ $value | humanizeDuration }}", humanize_duration(value))
    out = out.replace("{{ $value }}", str(int(value)) if float(value).is_integer() else repr(value))
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda mo: labels.get(mo.group(1), ""), out)
    if "{{" in out:
        raise ValueError("template construct not handled by the test renderer: " + out)
    return out


# ------------------------------------------------------------------ one source
SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$")


def check_series(known, series, where):
    mo = SERIES_RE.match(series.strip())
    if not mo:
        raise ValueError("%s: series must be written as name{labels}: %s" % (where, series))
    name, body = mo.groups()
    labels = set(re.findall(r'(\w+)="', body))
    if name not in known:
        raise ValueError("%s: %s is not in docs/metrics.json (nor a Prometheus series)" % (where, name))
    missing = known[name] - labels
    unknown = labels - known[name] - TARGET_LABELS
    if missing or unknown:
        raise ValueError("%s: %s labels differ from docs/metrics.json: missing %s, unknown %s"
                         % (where, name, sorted(missing), sorted(unknown)))


def build(path, known, outputs):
    with open(path, encoding="utf-8") as f:
        source = yaml.safe_load(f)
    rules = rules_json(source)
    for test in source["tests"]:
        where = "%s: %s" % (os.path.basename(path), test.get("name", "?"))
        for s in test.get("input_series", []):
            check_series(known, s["series"], where)
        for case in test.get("alert_rule_test", []):
            rule = rules.get(case["alertname"])
            if rule is None and case.get("exp_alerts"):
                raise ValueError("%s: no alert %s in the rules" % (where, case["alertname"]))
            for exp in case.get("exp_alerts") or []:
                value = exp.pop("value")
                labels = dict(exp["exp_labels"])
                exp["exp_labels"] = dict(labels, **rule["labels"])
                exp["exp_annotations"] = {k: render(v, labels, value)
                                          for k, v in rule["annotations"].items()}
    extra = source.pop("x-render-config", None)
    if extra is not None:
        # The source tests the rules rendered with an override: render them next to it.
        stem = os.path.basename(path)[:-len(".yaml")]
        rules_file = stem + ".rules.yaml"
        rendered = subprocess.run([os.path.join(ALERTS, "render.sh"), "--config-json", json.dumps(extra)],
                                  check=True, capture_output=True, text=True).stdout
        outputs[rules_file] = rendered
        source["rule_files"] = [rules_file]
    head = ("# GENERATED by alerts/tests/generate.py from alerts/tests/src/%s -- read and edit\n"
            "# the story there (its comments are the timeline), not this file.\n"
            % os.path.basename(path))
    return head + yaml.safe_dump(source, sort_keys=False, width=100, allow_unicode=True)


def main():
    check = "--check" in sys.argv
    known = contract()
    bad = []
    sources = sorted(glob.glob(os.path.join(HERE, "src", "*.yaml")))
    outputs = {}
    for src in sources:
        outputs[os.path.basename(src)[:-len(".yaml")] + ".test.yaml"] = build(src, known, outputs)
    for name, text in sorted(outputs.items()):
        out_path = os.path.join(HERE, name)
        if check:
            if not os.path.exists(out_path) or open(out_path, encoding="utf-8").read() != text:
                bad.append(name)
        else:
            with open(out_path, "w", encoding="utf-8") as f:
                f.write(text)
    stray = [os.path.basename(p) for p in glob.glob(os.path.join(HERE, "*.yaml"))
             if os.path.basename(p) not in outputs]
    if stray:
        print("test files without a source in alerts/tests/src: " + ", ".join(stray))
        sys.exit(1)
    if bad:
        print("out of date (run python3 alerts/tests/generate.py): " + ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
