#!/usr/bin/env python3
"""Generate the promtool rule-test files in alerts/tests/ from realistic scenarios.

Each scenario simulates a Bitbucket cluster (its /rest/zdu/cluster answers over time) and
the exporters that poll it (one central exporter, or one sidecar per pod that restarts with
its pod), then writes exactly the series the exporter contract says they expose, sampled
every 30s like a real scrape. Expectations (when an alert must fire, and that it must not
fire one evaluation earlier) are written by hand in the scenarios below.

    python3 alerts/tests/generate.py            # rewrite alerts/tests/*.test.yaml
    python3 alerts/tests/generate.py --check    # fail if they differ (used by alerts/test.sh)

Expected annotations are rendered with a tiny stand-in for the few Go-template constructs
the rules use; promtool then compares them with what Prometheus really renders.
Python 3 stdlib only.
"""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ALERTS = os.path.dirname(HERE)
STEP = 30  # scrape and rule evaluation interval, seconds

CLUSTER_STATES = ["STABLE", "READY_TO_UPGRADE", "MIXED", "READY_TO_RUN_UPGRADE_TASKS",
                  "RUNNING_UPGRADE_TASKS", "UPGRADE_TASKS_FAILED"]
NODE_STATES = ["STARTING", "ACTIVE", "DRAINING", "TERMINATING", "OFFLINE", "ERROR"]
REASONS = ["timeout", "connect", "tls", "unauthorized", "forbidden", "not_clustered",
           "not_found", "server_error", "unexpected_status", "not_json", "decode",
           "body_too_large", "stale"]
OLD, NEW = "8.9.0", "8.19.1"


def m(minutes, seconds=0):
    return int(minutes * 60 + seconds)


def load_rules():
    out = subprocess.run([os.path.join(ALERTS, "render.sh"), "--json"], check=True,
                         capture_output=True, text=True).stdout
    rules = json.loads(out)["groups"][0]["rules"]
    return {r["alert"]: r for r in rules}


RULES = load_rules()
CONFIG_CLUSTER = json.loads(subprocess.run(
    ["jsonnet", "-e", "(import '%s/config.libsonnet').clusterName" % ALERTS],
    check=True, capture_output=True, text=True).stdout)


# --------------------------------------------------------------------------- templates
def humanize_duration(v):
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        iv = int(v)
        s, mi, h, d = iv % 60, (iv // 60) % 60, (iv // 3600) % 24, iv // 86400
        if d:
            return "%s%dd %dh %dm %ds" % (sign, d, h, mi, s)
        if h:
            return "%s%dh %dm %ds" % (sign, h, mi, s)
        if mi:
            return "%s%dm %ds" % (sign, mi, s)
        return "%s%.4gs" % (sign, v)
    raise ValueError("sub-second durations not used in these tests")


def go_float(v):
    return str(int(v)) if float(v).is_integer() else repr(v)


def render(template, labels, value):
    name = labels.get("cluster") or labels.get("job", "")
    if labels.get("namespace"):
        name += " (namespace %s)" % labels["namespace"]
    out = template.replace(CONFIG_CLUSTER, name)
    out = re.sub(r'\{\{ if eq \$labels\.(\w+) "([^"]*)" \}\}(.*?)\{\{ else \}\}(.*?)\{\{ end \}\}',
                 lambda mo: mo.group(3) if labels.get(mo.group(1)) == mo.group(2) else mo.group(4),
                 out)
    if "{{ $value | humanizeDuration }}" in out:
        out = out.replace("{{ $value | humanizeDuration }}", humanize_duration(value))
    out = out.replace("{{ $value }}", go_float(value))
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda mo: labels.get(mo.group(1), ""), out)
    assert "{{" not in out, "template construct not handled by the test renderer: " + out
    return out


def expect(alert, labels, value):
    """One expected firing alert: labels are the alert's labels without alertname/severity."""
    rule = RULES[alert]
    full = dict(labels)
    full.update(rule["labels"])
    ann = {k: render(v, labels, value) for k, v in rule["annotations"].items()}
    return {"exp_labels": full, "exp_annotations": ann}


# --------------------------------------------------------------------------- cluster model
class Node:
    def __init__(self, nid, name, state="ACTIVE", version=OLD, users=20, tasks=3, entered=0):
        self.id, self.name, self.state, self.version = nid, name, state, version
        self.users, self.tasks, self.entered = users, tasks, entered


class Cluster:
    """Bitbucket's view, i.e. what /rest/zdu/cluster answers at a given time."""

    def __init__(self, nodes):
        self.nodes = nodes            # list[Node]; entries never disappear until approve/cancel
        self.mode = 0
        self.original = None
        self.state = "STABLE"
        self.entered = 0
        self.forced = None            # force a state (finalization, failure, unknown)

    def node(self, nid):
        return next(n for n in self.nodes if n.id == nid)

    def set_node(self, t, nid, state, **kw):
        n = self.node(nid)
        if state != n.state:
            n.state, n.entered = state, t
        for k, v in kw.items():
            setattr(n, k, v)
        if state == "OFFLINE":
            n.version = n.users = n.tasks = None

    def ghost(self, n):
        return n.state == "OFFLINE" and any(
            o is not n and o.name == n.name and o.state != "OFFLINE" for o in self.nodes)

    def compute(self, t):
        live = [n for n in self.nodes if n.state != "OFFLINE"]
        versions = {n.version for n in live if n.version}
        if self.forced:
            state = self.forced
        elif not self.mode:
            state = "STABLE"
        elif any(n.state == "ERROR" for n in self.nodes) or len(versions) > 1:
            state = "MIXED"
        elif versions <= {self.original}:
            state = "READY_TO_UPGRADE"
        else:
            state = "READY_TO_RUN_UPGRADE_TASKS"
        if state != self.state:
            self.state, self.entered = state, t


class Sidecar:
    def __init__(self, instance, pod=None, restarts=(), resets=()):
        self.instance, self.pod = instance, pod
        self.status = {}       # step -> 'ok' | 'down' | 'gone' | ('err', reason)
        self.resets = resets   # times at which it restarted WITHOUT a state file

    def labels(self):
        l = {"instance": self.instance}
        if self.pod:
            l["pod"] = self.pod
        return l


class Scenario:
    def __init__(self, name, minutes, base_labels, cluster, sidecars, events,
                 sidecar_status=None, extra_series=None):
        self.name, self.minutes, self.base = name, minutes, base_labels
        self.cluster, self.sidecars, self.events = cluster, sidecars, sorted(events, key=lambda e: e[0])
        self.sidecar_status = sidecar_status or (lambda sc, t: "ok")
        self.series = {}
        self.extra = extra_series or []

    def put(self, step, name, labels, value):
        key = name + "{" + ", ".join('%s="%s"' % (k, labels[k]) for k in sorted(labels)) + "}"
        self.series.setdefault(key, {})[step] = value

    def simulate(self):
        steps = self.minutes * 60 // STEP + 1
        ev = list(self.events)
        seen_transitions = {}
        for step in range(steps):
            t = step * STEP
            while ev and ev[0][0] <= t:
                ev.pop(0)[1](self.cluster, t)
            prev = self.cluster.state
            self.cluster.compute(t)
            if self.cluster.state != prev:
                seen_transitions[(prev, self.cluster.state)] = seen_transitions.get((prev, self.cluster.state), 0) + 1
            for sc in self.sidecars:
                st = self.sidecar_status(sc, t)
                if st == "gone":
                    continue
                lab = dict(self.base, **sc.labels())
                if st == "down":
                    self.put(step, "up", lab, 0)
                    continue
                self.put(step, "up", lab, 1)
                if st != "ok":
                    self.put(step, "bitbucket_zdu_up", lab, 0)
                    self.put(step, "bitbucket_zdu_last_error_info", dict(lab, reason=st[1]), 1)
                    continue
                self.put(step, "bitbucket_zdu_up", lab, 1)
                self.emit(step, t, sc, lab)
        return steps

    def clamp(self, sc, t, entered):
        # A sidecar restarted without a state file only knows states since its restart.
        for r in sc.resets:
            if t >= r:
                entered = max(entered, r)
        return entered

    def emit(self, step, t, sc, lab):
        c = self.cluster
        states = CLUSTER_STATES + ([c.state] if c.state not in CLUSTER_STATES else [])
        for s in states:
            self.put(step, "bitbucket_zdu_cluster_state", dict(lab, state=s), int(c.state == s))
        self.put(step, "bitbucket_zdu_cluster_state_entered_timestamp_seconds", lab, self.clamp(sc, t, c.entered))
        self.put(step, "bitbucket_zdu_upgrade_mode_enabled", lab, c.mode)
        live = [n for n in c.nodes if n.state != "OFFLINE"]
        self.put(step, "bitbucket_zdu_distinct_versions", lab, len({n.version for n in live if n.version}))
        self.put(step, "bitbucket_zdu_nodes_upgraded", lab,
                 len([n for n in live if c.mode and n.version and n.version != c.original]))
        self.put(step, "bitbucket_zdu_ghost_nodes", lab, len([n for n in c.nodes if c.ghost(n)]))
        for s in NODE_STATES:
            self.put(step, "bitbucket_zdu_nodes", dict(lab, state=s), len([n for n in c.nodes if n.state == s]))
        for n in c.nodes:
            nl = dict(lab, node_id=n.id, node_name=n.name)
            for s in NODE_STATES:
                self.put(step, "bitbucket_zdu_node_state", dict(nl, state=s), int(n.state == s))
            self.put(step, "bitbucket_zdu_node_state_entered_timestamp_seconds", nl, self.clamp(sc, t, n.entered))
            self.put(step, "bitbucket_zdu_node_ghost", nl, int(c.ghost(n)))
            if n.users is not None:
                self.put(step, "bitbucket_zdu_node_active_users", nl, n.users)
                self.put(step, "bitbucket_zdu_node_active_tasks", nl, n.tasks)

    def values(self, samples, steps):
        vals, last = [], None
        for i in range(steps):
            v = samples.get(i)
            if v is None:
                vals.append("stale" if last is not None else "_")
                last = None
            else:
                vals.append(go_float(v))
                last = v
        while vals and vals[-1] == "_":  # trailing blanks carry no information (keep a final stale marker)
            vals.pop()
        # compress runs: "v v v" -> "vx2", "_ _ _" -> "_x3"
        out, i = [], 0
        while i < len(vals):
            j = i
            while j + 1 < len(vals) and vals[j + 1] == vals[i]:
                j += 1
            n = j - i + 1
            if vals[i] == "stale" or n == 1:
                out.extend([vals[i]] * n)
            elif vals[i] == "_":
                out.append("_x%d" % n)
            else:
                out.append("%sx%d" % (vals[i], n - 1))
            i = j + 1
        return " ".join(out)

    def to_test(self, alert_tests, comment):
        steps = self.simulate()
        series = [{"series": k, "values": self.values(v, steps)} for k, v in sorted(self.series.items())]
        series += self.extra
        return {"name": "%s: %s" % (self.name, comment), "interval": "%ds" % STEP,
                "input_series": series, "alert_rule_test": alert_tests}


def silent(alerts, times):
    return [{"eval_time": fmt(t), "alertname": a, "exp_alerts": []} for t in times for a in alerts]


def fires(alert, at, labels, value_at):
    """Not firing one evaluation before `at`, firing at `at` (value = value_at(t))."""
    return [
        {"eval_time": fmt(at - STEP), "alertname": alert, "exp_alerts": []},
        {"eval_time": fmt(at), "alertname": alert, "exp_alerts": [expect(alert, labels, value_at(at))]},
    ]


def firing(alert, t, labels, value):
    return {"eval_time": fmt(t), "alertname": alert, "exp_alerts": [expect(alert, labels, value)]}


def fmt(t):
    mi, s = divmod(int(t), 60)
    return "%dm%ds" % (mi, s) if s else "%dm" % mi


ALL = sorted(RULES)
ALL_BUT_ABSENT = [a for a in ALL if a != "BitbucketZduExporterAbsent"]
K8S = {"job": "bitbucket-zdu", "namespace": "atlassian"}
K8S_ALERT = {"job": "bitbucket-zdu", "namespace": "atlassian"}
VM = {"job": "bitbucket-zdu-exporter", "cluster": "prod-eu"}


def nodes(n, prefix="bitbucket-", first_id=1):
    return [Node("n%d" % (first_id + i), "%s%d" % (prefix, i)) for i in range(n)]


# --------------------------------------------------------------------------- upgrade helpers
def upgrade_node(events, start, old_id, name, new_id=None, drain=60, term=30, offline=180, starting=300,
                 new_pod_ip=True):
    """Rolling-upgrade one node beginning at `start` (seconds). On Kubernetes the pod comes
    back with a new IP: a NEW entry appears (new id) and the old one stays OFFLINE (ghost)."""
    t = start

    def drain_step(k):
        return lambda c, _t: c.set_node(_t, old_id, "DRAINING", users=max(0, 20 - 10 * k), tasks=max(0, 3 - 2 * k))
    events.append((t, lambda c, _t: c.set_node(_t, old_id, "DRAINING", users=10, tasks=2)))
    for k in range(1, drain // STEP):
        events.append((t + k * STEP, drain_step(k + 1)))
    t += drain
    events.append((t, lambda c, _t: c.set_node(_t, old_id, "TERMINATING", users=0, tasks=0)))
    t += term
    events.append((t, lambda c, _t: c.set_node(_t, old_id, "OFFLINE")))
    t += offline
    if new_pod_ip:
        nid = new_id or old_id + "b"

        def add(c, _t):
            c.nodes.append(Node(nid, name, "STARTING", NEW, users=0, tasks=0, entered=_t))
        events.append((t, add))
    else:
        nid = old_id
        events.append((t, lambda c, _t: c.set_node(_t, old_id, "STARTING", version=NEW, users=0, tasks=0)))
    t += starting
    events.append((t, lambda c, _t: c.set_node(_t, nid, "ACTIVE", users=5, tasks=1)))
    return t, nid


def start_upgrade(c, t):
    c.mode, c.original = 1, OLD


def approve(c, t):
    c.forced = "RUNNING_UPGRADE_TASKS"


def finish(c, t):
    c.forced = None
    c.mode, c.original = 0, None
    c.nodes = [n for n in c.nodes if not c.ghost(n)]


# =========================================================================== scenarios
def healthy_k8s_upgrade():
    """4-pod StatefulSet, one sidecar per pod; each pod is replaced (new IP -> new instance,
    new node entry, old entry becomes an OFFLINE ghost) and its sidecar cannot reach
    Bitbucket while Bitbucket starts. Slow-but-healthy timings: 9.5 min per node."""
    c = Cluster(nodes(4))
    ev = [(m(5), start_upgrade)]
    windows = {}
    t = m(8)
    for i in (3, 2, 1, 0):
        begin = t
        t, _ = upgrade_node(ev, t, "n%d" % (i + 1), "bitbucket-%d" % i)
        windows["bitbucket-%d" % i] = (begin + 60 + 30, t)  # pod gone from TERMINATING, back at ACTIVE
        t += m(1)
    ev.append((t + m(10), approve))         # admin approves 10 min after the last node
    ev.append((t + m(10, 30), finish))      # finalization takes 30 s
    end = t + m(25)

    scs = []
    for i in range(4):
        scs.append(Sidecar("10.1.0.%d:9877" % (10 + i), "bitbucket-%d" % i))
        scs.append(Sidecar("10.1.1.%d:9877" % (10 + i), "bitbucket-%d" % i))  # same pod, new IP

    def status(sc, tt):
        pod = sc.pod
        down_from, up_at = windows[pod]
        old = sc.instance.startswith("10.1.0.")
        if old:
            return "ok" if tt < down_from else "gone"
        if tt < down_from + m(1):        # new pod not scheduled yet
            return "gone"
        if tt < up_at - m(1):            # sidecar up, Bitbucket not answering yet
            return ("err", "connect") if tt < up_at - m(4) else ("err", "server_error")
        return "ok"

    sc = Scenario("healthy rolling upgrade, 4 Kubernetes pods with sidecars, ghosts, restarts",
                  end // 60, K8S, c, scs, ev, status)
    times = list(range(0, end + 1, m(1)))
    return sc.to_test(silent(ALL, times),
                      "No alert may fire at any time of a healthy (slow) rolling upgrade.")


def stuck_mixed_restart():
    """One central exporter (VM set-up). bitbucket-2 upgraded, then nobody continues.
    The exporter restarts twice (it has a state file): once before the threshold, once
    after the alert fired. The alert must fire on time and keep firing through the gap."""
    c = Cluster(nodes(3))
    ev = [(m(2), start_upgrade)]
    upgrade_node(ev, m(3), "n3", "bitbucket-2", new_pod_ip=False, offline=m(1), starting=m(2))
    # DRAINING 3m, TERMINATING 4m, OFFLINE 4m30s, STARTING on NEW 5m30s -> MIXED from 5m30s
    mixed_at = m(5, 30)
    sc = Sidecar("bbexporter.example.net:9877")

    def status(s, tt):
        if m(50) <= tt < m(52) or m(80) <= tt < m(82):
            return "down"
        return "ok"
    scen = Scenario("stuck in MIXED, exporter restarted before and after the threshold",
                    100, VM, c, [sc], ev, status)
    fire = mixed_at + m(60) + STEP + m(2)   # after 1h, +1 eval to be strictly greater, + for 2m
    lab = dict(VM)
    tests = fires("BitbucketZduUpgradeStuckMixed", fire, lab, lambda tt: tt - mixed_at)
    for tt in (m(81), m(85), m(100)):
        tests.append(firing("BitbucketZduUpgradeStuckMixed", tt, lab, tt - mixed_at))
    tests += silent([a for a in ALL if a != "BitbucketZduUpgradeStuckMixed"], [m(51), m(81), m(100)])
    return scen.to_test(tests, "Headline alert: fires 1h+2m after the cluster entered MIXED, "
                               "unaffected by exporter restarts (state file keeps the entered timestamp).")


def multi_sidecar():
    """3 sidecars export the same cluster; one alert per cluster / per node, not 3.
    The sidecar of bitbucket-2 restarts WITHOUT a state file (new pod IP): its clock resets,
    the others keep the true entered time."""
    c = Cluster(nodes(3))
    ev = [(m(1), start_upgrade)]
    upgrade_node(ev, m(1), "n1", "bitbucket-0", offline=m(1), starting=m(2))  # STARTING on NEW at 3m30s
    mixed_at = m(3, 30)
    ev.append((m(20), lambda cc, t: cc.set_node(t, "n3", "ERROR")))
    scs = [Sidecar("10.1.0.1:9877", "bitbucket-0"), Sidecar("10.1.0.2:9877", "bitbucket-1"),
           Sidecar("10.1.0.3:9877", "bitbucket-2"),
           Sidecar("10.1.1.3:9877", "bitbucket-2", resets=(m(42),))]

    def status(s, tt):
        if s.instance == "10.1.0.3:9877":
            return "ok" if tt < m(40) else "gone"
        if s.instance == "10.1.1.3:9877":
            return "gone" if tt < m(42) else "ok"
        return "ok"
    scen = Scenario("three sidecars, one restarting without state file", 80, K8S, c, scs, ev, status)
    fire = mixed_at + m(60) + STEP + m(2)
    tests = fires("BitbucketZduUpgradeStuckMixed", fire, K8S_ALERT, lambda tt: tt - mixed_at)
    err_fire = m(20) + m(2) + STEP + m(2)
    nl = dict(K8S_ALERT, node_id="n3", node_name="bitbucket-2")
    tests += fires("BitbucketZduNodeError", err_fire, nl, lambda tt: tt - m(20))
    tests.append(firing("BitbucketZduNodeError", m(41), nl, m(21)))   # sidecar gone, others carry on
    tests.append(firing("BitbucketZduNodeError", m(60), nl, m(40)))   # restarted sidecar's clock reset: max wins
    tests.append(firing("BitbucketZduUpgradeStuckMixed", m(80), K8S_ALERT, m(80) - mixed_at))
    tests += silent(["BitbucketZduNodeLost", "BitbucketZduExporterDown", "BitbucketZduBitbucketUnreachable"],
                    [m(41), m(60), m(80)])
    return scen.to_test(tests, "N sidecars of one cluster yield one alert per cluster and one per node.")


def ghosts_and_lost_node():
    """Kubernetes: bitbucket-1 came back with a new IP; its old entry is an OFFLINE ghost for
    the rest of the upgrade (never alerts). bitbucket-2 goes OFFLINE and never returns."""
    c = Cluster(nodes(3))
    ev = [(m(1), start_upgrade)]
    upgrade_node(ev, m(2), "n2", "bitbucket-1", offline=m(1), starting=m(2))
    ev.append((m(20), lambda cc, t: cc.set_node(t, "n3", "OFFLINE")))
    scs = [Sidecar("10.1.0.1:9877", "bitbucket-0"), Sidecar("10.1.0.2:9877", "bitbucket-1")]
    scen = Scenario("ghost entries never alert; a really lost node does", 120, K8S, c, scs, ev)
    fire = m(20) + m(30) + STEP + m(5)
    nl = dict(K8S_ALERT, node_id="n3", node_name="bitbucket-2")
    tests = fires("BitbucketZduNodeLost", fire, nl, lambda tt: tt - m(20))
    tests.append(firing("BitbucketZduNodeLost", m(120), nl, m(100)))   # ghost n2 (OFFLINE since 5m) never appears
    return scen.to_test(tests, "Ghost OFFLINE entries (same name as a live node) are ignored.")


def cluster_state_scenarios():
    out = []

    def simple(name, minutes, events, alert, fire, entered, comment, extra_silent=()):
        c = Cluster(nodes(2))
        scen = Scenario(name, minutes, VM, c, [Sidecar("bbexporter:9877")], events)
        tests = fires(alert, fire, dict(VM), lambda tt: tt - entered) if fire else []
        tests += silent(list(extra_silent), list(range(0, minutes * 60 + 1, m(5))))
        out.append(scen.to_test(tests, comment))

    def all_new(c, t):
        for n in c.nodes:
            n.version = NEW

    # finalization fails 30 s after approve at 10m -> UPGRADE_TASKS_FAILED from 10m30s
    simple("upgrade tasks failed", 20,
           [(m(1), start_upgrade), (m(8), all_new), (m(10), approve),
            (m(10, 30), lambda c, t: setattr(c, "forced", "UPGRADE_TASKS_FAILED")),
            (m(10, 30), lambda c, t: setattr(c, "mode", 0))],
           "BitbucketZduUpgradeTasksFailed", m(10, 30) + m(1) + STEP + m(2), m(10, 30),
           "UPGRADE_TASKS_FAILED fires after 1m + 2m.")
    # UPGRADE_TASKS_FAILED for only 2m30s (retry succeeded): silent
    simple("upgrade tasks failed transiently", 30,
           [(m(1), start_upgrade), (m(8), all_new), (m(10), approve),
            (m(10, 30), lambda c, t: setattr(c, "forced", "UPGRADE_TASKS_FAILED")),
            (m(13), finish)],
           "BitbucketZduUpgradeTasksFailed", None, 0, "Shorter than its window: silent.",
           extra_silent=["BitbucketZduUpgradeTasksFailed"])
    simple("finalization running too long", 40,
           [(m(1), start_upgrade), (m(8), all_new), (m(10), approve)],
           "BitbucketZduUpgradeTasksRunningTooLong", m(10) + m(15) + STEP + m(2), m(10),
           "RUNNING_UPGRADE_TASKS fires after 15m + 2m.")
    simple("waiting for approval", 90,
           [(m(1), start_upgrade), (m(10), all_new)],
           "BitbucketZduAwaitingApproval", m(10) + m(60) + STEP + m(2), m(10),
           "READY_TO_RUN_UPGRADE_TASKS fires after 1h + 2m.",
           extra_silent=["BitbucketZduUpgradeStuckMixed", "BitbucketZduUpgradeModeIdle"])
    simple("upgrade mode idle", 90,
           [(m(5), start_upgrade)],
           "BitbucketZduUpgradeModeIdle", m(5) + m(60) + STEP + m(2), m(5),
           "READY_TO_UPGRADE fires after 1h + 2m.",
           extra_silent=["BitbucketZduAwaitingApproval"])
    return out


def unknown_state_and_skew():
    out = []
    c = Cluster(nodes(2))
    ev = [(m(5), lambda cc, t: setattr(cc, "forced", "PAUSED"))]
    scen = Scenario("unknown cluster state", 30, VM, c, [Sidecar("bbexporter:9877")], ev)
    lab = dict(VM, state="PAUSED")
    out.append(scen.to_test(fires("BitbucketZduUnknownClusterState", m(5) + m(15), lab, lambda tt: 1),
                            "A state this rule set does not know is reported (info)."))

    c = Cluster(nodes(3))
    ev = [(m(5), lambda cc, t: setattr(cc.node("n2"), "version", NEW)),
          (m(5), lambda cc, t: setattr(cc, "forced", "STABLE"))]
    scen = Scenario("version skew with upgrade mode off", 30, VM, c, [Sidecar("bbexporter:9877")], ev)
    out.append(scen.to_test(fires("BitbucketZduVersionSkew", m(5) + m(10), dict(VM), lambda tt: 2),
                            "Two versions while upgrade mode is off."))
    return out


def node_scenarios():
    out = []

    def one(name, events, alert, fire, entered, minutes=40, extra_silent=()):
        c = Cluster(nodes(3))
        scen = Scenario(name, minutes, VM, c, [Sidecar("bbexporter:9877")], [(m(1), start_upgrade)] + events)
        nl = dict(VM, node_id="n2", node_name="bitbucket-1")
        tests = fires(alert, fire, nl, lambda tt: tt - entered) if fire else []
        tests += silent(list(extra_silent), list(range(0, minutes * 60 + 1, m(1))))
        out.append(scen.to_test(tests, name))

    one("node DRAINING too long", [(m(10), lambda c, t: c.set_node(t, "n2", "DRAINING", users=7))],
        "BitbucketZduNodeDrainingTooLong", m(10) + m(5) + STEP + m(2), m(10))
    one("node TERMINATING too long", [(m(10), lambda c, t: c.set_node(t, "n2", "TERMINATING", users=0, tasks=0))],
        "BitbucketZduNodeTerminatingTooLong", m(10) + m(5) + STEP + m(2), m(10))
    one("node STARTING too long",
        [(m(5), lambda c, t: c.set_node(t, "n2", "OFFLINE")),
         (m(10), lambda c, t: c.set_node(t, "n2", "STARTING", version=NEW, users=0, tasks=0))],
        "BitbucketZduNodeStartingTooLong", m(10) + m(15) + STEP + m(2), m(10))
    one("node in ERROR", [(m(10), lambda c, t: c.set_node(t, "n2", "ERROR"))],
        "BitbucketZduNodeError", m(10) + m(2) + STEP + m(2), m(10))
    # transients just under each window: drain 4m30s+2m, terminate 6m, offline 25m, start 14m, error 3m
    one("node transients shorter than their windows",
        [(m(3), lambda c, t: c.set_node(t, "n2", "ERROR")),
         (m(6), lambda c, t: c.set_node(t, "n2", "ACTIVE")),
         (m(8), lambda c, t: c.set_node(t, "n2", "DRAINING", users=3)),
         (m(14, 30), lambda c, t: c.set_node(t, "n2", "TERMINATING", users=0, tasks=0)),
         (m(21), lambda c, t: c.set_node(t, "n2", "OFFLINE")),
         (m(53), lambda c, t: c.set_node(t, "n2", "STARTING", version=NEW, users=0, tasks=0)),
         (m(69), lambda c, t: c.set_node(t, "n2", "ACTIVE", users=4, tasks=1))],
        None, None, 0, minutes=80,
        extra_silent=["BitbucketZduNodeError", "BitbucketZduNodeDrainingTooLong",
                      "BitbucketZduNodeTerminatingTooLong", "BitbucketZduNodeStartingTooLong",
                      "BitbucketZduNodeLost"])
    return out


def exporter_scenarios():
    out = []
    two = lambda: [Sidecar("10.1.0.1:9877", "bitbucket-0"), Sidecar("10.1.0.2:9877", "bitbucket-1")]

    def scen(name, status, minutes=30, extra=None):
        return Scenario(name, minutes, K8S, Cluster(nodes(2)), two(), [], status, extra)

    s = scen("one sidecar cannot be scraped",
             lambda sc, t: "down" if sc.pod == "bitbucket-1" and t >= m(10) else "ok")
    out.append(s.to_test(fires("BitbucketZduExporterDown", m(15), K8S_ALERT, lambda t: 1)
                         + silent(["BitbucketZduBitbucketUnreachable"], [m(20), m(30)]),
                         "Scrape failure (up == 0) for 5m."))

    s = Scenario("no exporter target at all", 30, K8S, Cluster(nodes(2)), [], [],
                 extra_series=[{"series": 'up{job="node"}', "values": "1x60"}])
    out.append(s.to_test(fires("BitbucketZduExporterAbsent", m(15), {}, lambda t: 1),
                         "No target matches the selector."))

    s = scen("Bitbucket unreachable from every sidecar",
             lambda sc, t: ("err", "connect" if sc.pod == "bitbucket-0" else "timeout") if t >= m(10) else "ok")
    out.append(s.to_test(fires("BitbucketZduBitbucketUnreachable", m(20), K8S_ALERT, lambda t: 0),
                         "All sidecars up == 0 (different reasons) for 10m: one alert."))

    s = scen("one sidecar's node unreachable (node being upgraded)",
             lambda sc, t: ("err", "connect") if sc.pod == "bitbucket-1" and t >= m(5) else "ok", minutes=40)
    out.append(s.to_test(silent(["BitbucketZduBitbucketUnreachable"], list(range(0, m(40) + 1, m(5)))),
                         "Another sidecar still sees the cluster: not unreachable."))

    s = scen("credentials forbidden on every sidecar",
             lambda sc, t: ("err", "forbidden") if t >= m(10) else "ok")
    out.append(s.to_test(fires("BitbucketZduCredentialsRejected", m(15), dict(K8S_ALERT, reason="forbidden"), lambda t: 1)
                         + silent(["BitbucketZduBitbucketUnreachable", "BitbucketZduNotClustered"], [m(20), m(30)]),
                         "403 on all sidecars: one CredentialsRejected{reason=forbidden}, not Unreachable."))

    s = scen("wrong password on one sidecar",
             lambda sc, t: ("err", "unauthorized") if sc.pod == "bitbucket-0" and t >= m(10) else "ok")
    out.append(s.to_test(fires("BitbucketZduCredentialsRejected", m(15), dict(K8S_ALERT, reason="unauthorized"), lambda t: 1),
                         "401 on one sidecar."))

    s = scen("not clustered", lambda sc, t: ("err", "not_clustered"))
    out.append(s.to_test(fires("BitbucketZduNotClustered", m(10), dict(K8S_ALERT, reason="not_clustered"), lambda t: 1)
                         + silent(["BitbucketZduBitbucketUnreachable", "BitbucketZduCredentialsRejected"], [m(20), m(30)]),
                         "Non-clustered instance."))

    s = scen("stale data", lambda sc, t: ("err", "stale") if sc.pod == "bitbucket-1" and t >= m(10) else "ok")
    out.append(s.to_test(fires("BitbucketZduExporterStale", m(15), dict(K8S_ALERT, reason="stale"), lambda t: 1),
                         "Poll loop hung on one exporter."))

    s = scen("transient failures shorter than their windows",
             lambda sc, t: ("down" if m(5) <= t < m(9) else
                            ("err", "timeout") if m(12) <= t < m(21) else
                            ("err", "unauthorized") if m(25) <= t < m(29) else
                            ("err", "stale") if m(32) <= t < m(36) else "ok"), minutes=50)
    out.append(s.to_test(silent(["BitbucketZduExporterDown", "BitbucketZduBitbucketUnreachable",
                                 "BitbucketZduCredentialsRejected", "BitbucketZduExporterStale"],
                                list(range(0, m(50) + 1, m(1)))),
                         "Every exporter-side failure shorter than its for: window stays silent."))
    return out


FILES = {
    "healthy-upgrade.test.yaml": lambda: [healthy_k8s_upgrade()],
    "stuck-mixed.test.yaml": lambda: [stuck_mixed_restart(), multi_sidecar()],
    "ghosts.test.yaml": lambda: [ghosts_and_lost_node()],
    "cluster-states.test.yaml": lambda: cluster_state_scenarios() + unknown_state_and_skew(),
    "nodes.test.yaml": node_scenarios,
    "exporter.test.yaml": exporter_scenarios,
}


def main():
    check = "--check" in sys.argv
    sys.path.insert(0, os.path.join(ALERTS, "tools"))
    import to_yaml  # noqa: E402
    bad = []
    for fname, build in FILES.items():
        tests = build()
        doc = {"rule_files": ["../bitbucket-zdu-alerts.yaml"], "evaluation_interval": "30s",
               "tests": tests}
        out = []
        to_yaml.emit(doc, 0, out)
        text = ("# GENERATED by alerts/tests/generate.py -- edit the scenarios there, not this file.\n"
                + "\n".join(out) + "\n")
        path = os.path.join(HERE, fname)
        if check:
            if not os.path.exists(path) or open(path).read() != text:
                bad.append(fname)
        else:
            with open(path, "w") as f:
                f.write(text)
    if bad:
        print("out of date (run python3 alerts/tests/generate.py): " + ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
