"""Helpers of the end-to-end assertions (tests/e2e/check.py): Prometheus's HTTP API, the
dashboards' queries with Grafana variables substituted, and the webhook receiver's log.
Python 3 stdlib only."""
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

# Queries naming one of these can only return data when something is wrong.
TROUBLE_ONLY = re.compile(r"\bALERTS\b|\bbitbucket_zdu_last_error_info\b")


def http_get(url, timeout=5, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode("utf-8")


class Prom:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def api(self, path, params):
        url = "%s/api/v1/%s?%s" % (self.base, path, urllib.parse.urlencode(params, doseq=True))
        try:
            body = json.loads(http_get(url, timeout=10))
        except urllib.error.HTTPError as e:
            body = json.loads(e.read().decode("utf-8") or "{}")
        if body.get("status") != "success":
            raise RuntimeError("%s %s: %s %s" % (path, params, body.get("errorType"), body.get("error")))
        return body["data"]

    def query(self, expr):
        return self.api("query", {"query": expr})["result"]


# ----------------------------------------------------------------------------- dashboards
VAR_RE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)(?::[\w]+)?\]\]|\$(\w+)")


def substitute(expr, values):
    missing = []

    def rep(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        missing.append(name)
        return m.group(0)

    out = VAR_RE.sub(rep, expr)
    if missing:
        raise ValueError("unknown Grafana variable(s) %s in %r" % (sorted(set(missing)), expr))
    return out


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def dashboard_queries(paths):
    """[(where, kind, expr)] where kind is 'expr' or 'label_values'."""
    out = []
    for path in paths:
        d = json.load(open(path, encoding="utf-8"))
        name = os.path.basename(path)
        for p in walk_panels(d.get("panels")):
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append(("%s panel %s %r ref %s" % (name, p.get("id"), p.get("title"), t.get("refId")),
                                "expr", t["expr"]))
        for a in (d.get("annotations") or {}).get("list") or []:
            if a.get("expr"):
                out.append(("%s annotation %r" % (name, a.get("name")), "expr", a["expr"]))
        for v in (d.get("templating") or {}).get("list") or []:
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if q:
                out.append(("%s variable %s" % (name, v.get("name")), "variable", q))
    return out


def template_vars(paths):
    names = set()
    for path in paths:
        d = json.load(open(path, encoding="utf-8"))
        for v in (d.get("templating") or {}).get("list") or []:
            names.add(v.get("name"))
    return names


LABEL_VALUES_RE = re.compile(r"^\s*label_values\((.*),\s*(\w+)\)\s*$", re.S)


def run_query(prom, kind, expr):
    """Number of results (series or label values) of one dashboard query."""
    if kind == "variable":
        m = LABEL_VALUES_RE.match(expr)
        if m:
            sel, label = m.group(1), m.group(2)
            vals = prom.api("label/%s/values" % label, {"match[]": sel})
            return len([v for v in vals if v != ""])
        m = re.match(r"^\s*query_result\((.*)\)\s*$", expr, re.S)
        if m:
            expr = m.group(1)
        else:
            raise ValueError("unsupported variable query %r" % expr)
    return len(prom.query(expr))


# ----------------------------------------------------------------------------- webhook log
def read_webhook(path):
    recs = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    recs.append(json.loads(line))
    except FileNotFoundError:
        pass
    return recs


def webhook_alerts(recs):
    """[(received, status, labels)] for every alert of every notification."""
    out = []
    for r in recs:
        body = r.get("body") or {}
        for a in body.get("alerts") or []:
            out.append((r["received"], a.get("status"), a.get("labels") or {}))
    return out


def label_key(labels):
    return tuple(sorted(labels.items()))
