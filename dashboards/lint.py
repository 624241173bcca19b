#!/usr/bin/env python3
"""Lint Grafana dashboards the way grafana/dashboard-linter would, plus project rules.

usage: lint.py [--metrics FILE]... [--contract docs/metrics.json] [--rules RULES.json]
               [--cluster-labels a,b] DASHBOARD.json...

Rules (each violation is printed as "<file>: [<rule>] <where>: <message>"):
  uid             dashboard uid set, <= 40 safe characters, equal to the file name (stable);
                  top-level id null; panel ids unique
  title           dashboard and every panel (rows too) have a title
  description     dashboard and every non-row panel have a description
  datasource      a `datasource` template variable of type datasource (prometheus) exists;
                  every panel, every target, every query variable and every annotation query
                  uses it (${datasource}), never a fixed uid
  selector-vars   template variables `job` and `instance` exist and every metric selector in
                  every panel/annotation query filters on both of them (a recorded per-cluster
                  series, `bitbucket_zdu:*`, has no instance: job is enough)
  cluster-by      every aggregation in a panel or annotation query groups `by` all the cluster
                  labels (_config.clusterLabels of the mixin, or --cluster-labels): a query never
                  adds up several clusters when "All" is selected
  state-colour    a stat that shows time in the cluster state (..._state_entered_timestamp...)
                  colours per state (field overrides per state) and STABLE is never red
  promql          every query is valid PromQL: all of them, with the Grafana variables
                  substituted, go into one rule file as recording rules and `promtool check
                  rules` must accept it (promtool is required)
  rate-interval   rate(), irate() and increase() use [$__rate_interval]
  metrics         every metric a query names (panels, annotations, variables, and the alert
                  rules given with --rules) is one the exporter emits: with --metrics FILE
                  (real /metrics exposition text; repeat for a union) the name must appear there
                  (X_bucket/X_sum/X_count accepted only when X is a histogram/summary there);
                  without --metrics, the name must be in the metric contract docs/metrics.json
                  (or --contract FILE).
                  Recording rules (--rules, default: the mixin's, rendered) and Prometheus's
                  own series (up, ALERTS, ALERTS_FOR_STATE, scrape_*) are always known.
                  Products: a name with a product prefix (bitbucket_zdu_*, confluence_zdu_*,
                  jira_zdu_* and their recorded :* forms; never bitbucket_zdu_exporter_*) must
                  exist for THAT product in the contract (its "products" list), one query, one
                  rule and one dashboard never mix products, and a dashboard whose uid starts
                  with a product ("jira-zdu-overview") reads only that product's families.

Exit status 1 if any violation was found. Python 3 stdlib only.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import promql_parser

REQUIRED_SELECTOR_VARS = ("job", "instance")
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
                       "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                       "scrape_series_added"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONTRACT = os.path.join(ROOT, "docs", "metrics.json")
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
RATE_FUNCS = {"rate", "irate", "increase"}
DS_VALUES = {"${datasource}", "$datasource", "[[datasource]]"}
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


# ----------------------------------------------------------------------------- PromQL AST
# Queries are parsed by promql-parser (PyPI; the Python binding of the Rust crate). Grafana's
# interval variables are not PromQL: before parsing they become durations, $__rate_interval a
# sentinel the rate-interval rule recognises. A query that does not parse yields nothing here;
# the [promql] rule (promtool) reports it.
RATE_INTERVAL_SENTINEL = datetime.timedelta(seconds=7777)
MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def parse_promql(expr):
    text = re.sub(r"\$\{?__rate_interval\}?", "7777s", expr)
    text = re.sub(r"\$\{?__(?:interval|range)\}?", "5m", text)
    try:
        return promql_parser.parse(text)
    except Exception:  # noqa: BLE001 - any parse failure is the [promql] rule's to report
        return None


def walk(node):
    """Every node of the AST, depth first."""
    if node is None:
        return
    yield node
    kind = type(node).__name__
    if kind == "BinaryExpr":
        yield from walk(node.lhs)
        yield from walk(node.rhs)
    elif kind == "AggregateExpr":
        yield from walk(node.param)
        yield from walk(node.expr)
    elif kind == "Call":
        for arg in node.args:
            yield from walk(arg)
    elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        yield from walk(node.expr)
    elif kind == "MatrixSelector":
        yield from walk(node.vector_selector)


def selectors(expr):
    """Return a list of (metric_name or None, [(label, op, value)]) for every vector selector."""
    out = []
    for n in walk(parse_promql(expr)):
        if type(n).__name__ == "VectorSelector":
            matchers = [(m.name, MATCH_OPS.get(str(m.op), str(m.op)), m.value)
                        for m in n.matchers.matchers if m.name != "__name__"]
            out.append((n.name or None, matchers))
    return out


def prom_duration(delta):
    """A timedelta as PromQL writes it: 5m, 1h, 1h30m, 90s, 250ms."""
    ms = round(delta.total_seconds() * 1000)
    out = ""
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += "%d%s" % (ms // size, unit)
            ms %= size
    return out or "0s"


def rate_ranges(expr):
    """Yield (function, range_text) for every rate/irate/increase call."""
    for n in walk(parse_promql(expr)):
        if type(n).__name__ == "Call" and n.func.name in RATE_FUNCS:
            arg = n.args[0] if n.args else None
            if type(arg).__name__ != "MatrixSelector":
                yield n.func.name, None
            elif arg.range == RATE_INTERVAL_SENTINEL:
                yield n.func.name, "[$__rate_interval]"
            else:
                yield n.func.name, "[%s]" % prom_duration(arg.range)


def variable_query_expr(q):
    """The PromQL part of a Grafana Prometheus variable query."""
    if isinstance(q, dict):
        q = q.get("query", "")
    q = q.strip()
    m = re.match(r"^label_values\((.*)\)$", q, re.S)
    if m:
        inner = m.group(1)
        parts = inner.rsplit(",", 1)
        return parts[0] if len(parts) == 2 else ""   # label_values(label) has no metric
    m = re.match(r"^(?:query_result|metrics)\((.*)\)$", q, re.S)
    if m:
        return m.group(1)
    if q.startswith("label_names("):
        return q[len("label_names("):-1]
    return q


# ----------------------------------------------------------------------------- metrics
def load_metrics(paths):
    known = set()
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if line.startswith("#"):
                    parts = line.split()
                    if len(parts) >= 4 and parts[1] == "TYPE":
                        name, typ = parts[2], parts[3]
                        if typ in ("histogram", "gaugehistogram"):
                            known.update({name + "_bucket", name + "_sum", name + "_count"})
                        elif typ == "summary":
                            known.update({name, name + "_sum", name + "_count"})
                        elif typ == "counter":
                            known.update({name, name + "_total"} if not name.endswith("_total") else {name})
                        else:
                            known.add(name)
                    continue
                m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)", line)
                if m:
                    known.add(m.group(1))
    return known


PRODUCT_PREFIXES = {"bitbucket": "bitbucket_zdu", "confluence": "confluence_zdu", "jira": "jira_zdu"}


def name_product(name):
    """The product a metric or recording-rule name belongs to by its prefix, else None."""
    if name.startswith("bitbucket_zdu_exporter_"):
        return None
    for product, prefix in PRODUCT_PREFIXES.items():
        if name.startswith(prefix + "_") or name.startswith(prefix + ":"):
            return product
    return None


def load_contract(path):
    """Sample names of the metric contract (docs/metrics.json), each product's under its own
    prefix: a family listed for several products is named bitbucket_zdu_* in the contract and
    exists as <product>_zdu_* for each of them; one without products (the exporter's own)
    keeps its name."""
    with open(path, encoding="utf-8") as f:
        metrics = json.load(f)["metrics"]
    known = set()
    for m in metrics:
        names = ({m["name"] + "_bucket", m["name"] + "_sum", m["name"] + "_count"}
                 if m["type"] == "histogram" else {m["name"]})
        products = m.get("products") or []
        if not products:
            known.update(names)
        for product in products:
            prefix = PRODUCT_PREFIXES[product]
            known.update(n.replace("bitbucket_zdu", prefix, 1) if n.startswith("bitbucket_zdu_") else n
                         for n in names)
    return known


def default_cluster_labels():
    out = subprocess.run(["jsonnet", "-J", os.path.join(ROOT, "alerts"), "-e",
                          "(import 'config.libsonnet')._config.clusterLabels"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def aggregations(expr):
    """Yield (operator, modifier, labels) for every aggregation: modifier is by/without/None."""
    for n in walk(parse_promql(expr)):
        if type(n).__name__ != "AggregateExpr" or str(n.op) not in AGGREGATIONS:
            continue
        mod = n.modifier
        if mod is None:
            yield str(n.op), None, []
        else:
            kind = "by" if str(mod.type).endswith(".By") else "without"
            yield str(n.op), kind, list(mod.labels)


GRAFANA_VARS = {"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}


def grafana_substitute(expr):
    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)",
                  lambda m: GRAFANA_VARS.get(m.group(1) or m.group(2) or m.group(3), ".*"), expr)
    return expr


def promtool_check(queries):
    """Run every (where, expr) through `promtool check rules`; return [(where, error)]."""
    promtool = shutil.which("promtool")
    if not promtool:
        raise SystemExit("lint.py: promtool not found (Debian package prometheus): the [promql] rule needs it")
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (where, expr) in enumerate(queries):
            # one file per query, so an error is attributed to exactly its query
            path = os.path.join(tmp, "q%d.yaml" % i)
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"groups": [{"name": "lint", "rules": [
                    {"record": "lint:query", "expr": grafana_substitute(expr)}]}]}, f)
        paths = [os.path.join(tmp, "q%d.yaml" % i) for i in range(len(queries))]
        if not paths:
            return errors
        r = subprocess.run([promtool, "check", "rules"] + paths, capture_output=True, text=True)
        if r.returncode != 0:
            for line in (r.stdout + r.stderr).splitlines():
                for i, p in enumerate(paths):
                    if line.strip().startswith(p + ":"):
                        errors.append((queries[i][0], line.strip()[len(p) + 1:].strip()))
    return errors


def load_rules(path):
    """Recording rule names and rule expressions; path None = the mixin's rules (render.sh --json).
    A .yaml/.yml path is read with PyYAML (a rendered rule file)."""
    if path is None:
        doc = json.loads(subprocess.run([os.path.join(ROOT, "alerts", "render.sh"), "--json"],
                                        check=True, capture_output=True, text=True).stdout)
    elif path.endswith((".yaml", ".yml")):
        import yaml  # noqa: PLC0415 - only rendered YAML rule files need it
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    else:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    records, exprs = set(), []
    for g in doc.get("groups", []):
        for r in g.get("rules", []):
            if "record" in r:
                records.add(r["record"])
            exprs.append((r.get("alert") or r.get("record"), r["expr"]))
    return records, exprs


# ----------------------------------------------------------------------------- lint
class Linter:
    def __init__(self, known_metrics, records, cluster_labels):
        self.known = known_metrics
        self.records = records
        self.cluster_labels = cluster_labels
        self.violations = []
        self.queries = []               # (fname, where, expr) for the [promql] check
        self.file_products = {}         # fname -> products its queries read

    def v(self, fname, rule, where, msg):
        self.violations.append("%s: [%s] %s: %s" % (fname, rule, where, msg))

    def metric_ok(self, name):
        if name in PROMETHEUS_BUILTINS or name in self.records:
            return True
        return name in self.known

    def check_metrics(self, fname, where, expr):
        """Every name known; returns the products the expression's names belong to."""
        products = set()
        for name, _ in selectors(expr):
            if name and not self.metric_ok(name):
                src = self.known_source
                self.v(fname, "metrics", where, "metric %r is not in %s" % (name, src))
            if name and name_product(name):
                products.add(name_product(name))
        if len(products) > 1:
            self.v(fname, "metrics", where, "mixes the metrics of %s" % ", ".join(sorted(products)))
        self.file_products.setdefault(fname, set()).update(products)
        return products

    def check_query(self, fname, where, expr, var_names):
        self.check_metrics(fname, where, expr)
        self.queries.append((fname, where, expr))
        for op, mod, labels in aggregations(expr):
            if mod is None:
                self.v(fname, "cluster-by", where, "%s() without `by (%s)` adds clusters together"
                       % (op, ", ".join(self.cluster_labels)))
            elif mod == "by" and not set(self.cluster_labels) <= set(labels):
                self.v(fname, "cluster-by", where, "%s by (%s) does not keep the cluster labels %s"
                       % (op, ", ".join(labels), ", ".join(self.cluster_labels)))
            elif mod == "without" and set(self.cluster_labels) & set(labels):
                self.v(fname, "cluster-by", where, "%s without (%s) drops a cluster label" % (op, ", ".join(labels)))
        for name, matchers in selectors(expr):
            for var in REQUIRED_SELECTOR_VARS:
                if name and ":" in name and var == "instance":
                    continue  # recorded per-cluster series have no instance
                if var not in var_names:
                    continue
                ok = any(lbl == var and ("$" + var in val or "${" + var in val) for lbl, _, val in matchers)
                if not ok:
                    self.v(fname, "selector-vars", where,
                           "selector %s%s does not filter on %s=~\"$%s\"" % (name or "", "{...}", var, var))
        for func, rng in rate_ranges(expr):
            if rng is None or rng.strip("[]").strip() != "$__rate_interval":
                self.v(fname, "rate-interval", where, "%s() must use [$__rate_interval], not %s" % (func, rng))

    def ds_ok(self, ds):
        if isinstance(ds, dict):
            return ds.get("uid") in DS_VALUES
        return ds in DS_VALUES

    def lint(self, path):
        fname = os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            self.v(fname, "json", "file", str(e))
            return
        stem = os.path.splitext(fname)[0]
        uid = d.get("uid")
        if not uid:
            self.v(fname, "uid", "dashboard", "uid is not set (Grafana would generate a random one)")
        elif not UID_RE.match(uid):
            self.v(fname, "uid", "dashboard", "uid %r must be 1-40 characters of [A-Za-z0-9_-]" % uid)
        elif uid != stem:
            self.v(fname, "uid", "dashboard", "uid %r must equal the file name %r so it stays stable" % (uid, stem))
        if d.get("id") is not None:
            self.v(fname, "uid", "dashboard", "top-level id must be null for provisioning, got %r" % d.get("id"))
        if not (d.get("title") or "").strip():
            self.v(fname, "title", "dashboard", "dashboard has no title")
        if not (d.get("description") or "").strip():
            self.v(fname, "description", "dashboard", "dashboard has no description")

        variables = d.get("templating", {}).get("list", [])
        var_names = {x.get("name") for x in variables}
        dsvar = [x for x in variables if x.get("name") == "datasource"]
        if not dsvar or dsvar[0].get("type") != "datasource" or dsvar[0].get("query") != "prometheus":
            self.v(fname, "datasource", "templating", "no `datasource` variable of type datasource with query prometheus")
        for var in REQUIRED_SELECTOR_VARS:
            if var not in var_names:
                self.v(fname, "selector-vars", "templating", "no `%s` template variable" % var)
        for x in variables:
            if x.get("type") == "query":
                where = "variable $%s" % x.get("name")
                if not self.ds_ok(x.get("datasource")):
                    self.v(fname, "datasource", where, "must use the ${datasource} variable, got %r" % (x.get("datasource"),))
                self.check_metrics(fname, where, variable_query_expr(x.get("query", "")))

        for a in d.get("annotations", {}).get("list", []):
            if a.get("builtIn"):
                continue
            where = "annotation %r" % a.get("name")
            if not self.ds_ok(a.get("datasource")):
                self.v(fname, "datasource", where, "must use the ${datasource} variable, got %r" % (a.get("datasource"),))
            expr = a.get("expr") or (a.get("target") or {}).get("expr", "")
            if expr:
                self.check_query(fname, where, expr, var_names)

        ids = set()
        for p in self.all_panels(d.get("panels", [])):
            where = "panel %r (id %s)" % (p.get("title"), p.get("id"))
            pid = p.get("id")
            if pid is None or pid in ids:
                self.v(fname, "uid", where, "panel id missing or duplicated")
            ids.add(pid)
            if not (p.get("title") or "").strip():
                self.v(fname, "title", where, "panel has no title")
            if p.get("type") == "row":
                continue
            if not (p.get("description") or "").strip():
                self.v(fname, "description", where, "panel has no description")
            if not self.ds_ok(p.get("datasource")):
                self.v(fname, "datasource", where, "panel must use the ${datasource} variable, got %r" % (p.get("datasource"),))
            self.check_state_colour(fname, where, p)
            for t in p.get("targets", []):
                tw = "%s target %s" % (where, t.get("refId"))
                if not self.ds_ok(t.get("datasource")):
                    self.v(fname, "datasource", tw, "target must use the ${datasource} variable, got %r" % (t.get("datasource"),))
                if t.get("expr") is not None:
                    self.check_query(fname, tw, t["expr"], var_names)

        self.check_dashboard_product(fname, stem)

    def check_dashboard_product(self, fname, stem):
        """One product per dashboard; a "<product>-..." uid reads only that product."""
        found = self.file_products.get(fname, set())
        declared = next((p for p in PRODUCT_PREFIXES if stem.startswith(p + "-")), None)
        if len(found) > 1:
            self.v(fname, "metrics", "dashboard", "reads the metrics of several products: %s"
                   % ", ".join(sorted(found)))
        elif declared and found and found != {declared}:
            self.v(fname, "metrics", "dashboard", "is a %s dashboard but reads %s metrics"
                   % (declared, ", ".join(sorted(found))))

    def check_state_colour(self, fname, where, p):
        exprs = " ".join(t.get("expr") or "" for t in p.get("targets", []))
        if p.get("type") != "stat" or "cluster_state_entered_timestamp" not in exprs:
            return
        overrides = (p.get("fieldConfig") or {}).get("overrides") or []
        stable = [o for o in overrides if "STABLE" in str((o.get("matcher") or {}).get("options", ""))]
        if not stable:
            self.v(fname, "state-colour", where, "time in state has no per-state colours (no STABLE override)")
            return
        for o in stable:
            for prop in o.get("properties", []):
                if prop.get("id") == "thresholds":
                    colours = [st.get("color") for st in prop.get("value", {}).get("steps", [])]
                    if any("red" in (c or "") for c in colours):
                        self.v(fname, "state-colour", where, "STABLE turns red (%s)" % colours)

    def check_promql(self):
        for (where, err) in promtool_check([("%s: %s" % (f, w), e) for f, w, e in self.queries]):
            fname, w = where.split(": ", 1)
            self.v(fname, "promql", w, "promtool check rules: " + err)

    def all_panels(self, panels):
        for p in panels:
            yield p
            for sub in p.get("panels", []) or []:
                yield sub


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metrics", action="append", default=[], metavar="FILE",
                    help="exporter /metrics output; repeat to take the union")
    ap.add_argument("--rules", metavar="RULES.json",
                    help="rendered rules as JSON (alerts/render.sh --json): recording rules count as "
                         "known metrics and the alert expressions are checked against --metrics too")
    ap.add_argument("--contract", default=DEFAULT_CONTRACT, metavar="metrics.json",
                    help="the metric contract used without --metrics (default docs/metrics.json)")
    ap.add_argument("--cluster-labels", metavar="a,b",
                    help="labels every aggregation must keep (default: the mixin's _config.clusterLabels)")
    ap.add_argument("dashboards", nargs="+")
    args = ap.parse_args(argv)

    if args.metrics:
        known, source = load_metrics(args.metrics), "the --metrics file(s)"
    else:
        known, source = load_contract(args.contract), os.path.relpath(args.contract, os.getcwd())
    records, rule_exprs = load_rules(args.rules)
    cluster_labels = args.cluster_labels.split(",") if args.cluster_labels else default_cluster_labels()
    linter = Linter(known, records, cluster_labels)
    linter.known_source = source
    for path in args.dashboards:
        linter.lint(path)
    linter.check_promql()
    for name, expr in rule_exprs:
        linter.check_metrics(os.path.basename(args.rules or "alerts/render.sh --json"), "rule %s" % name, expr)
    for line in linter.violations:
        print(line)
    mode = "against %d metrics file(s)" % len(args.metrics) if args.metrics else "against the contract"
    print("lint.py (%s): %d dashboard(s), %d violation(s)" % (mode, len(args.dashboards), len(linter.violations)))
    return 1 if linter.violations else 0


if __name__ == "__main__":
    sys.exit(main())
