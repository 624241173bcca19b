#!/usr/bin/env python3
"""Assertions of the end-to-end test, against the real Prometheus and the webhook log.

Started by tests/e2e/run.sh once every component is up (Python 3 stdlib only). It polls
Prometheus's HTTP API and the webhook receiver's log until every assertion is settled or the
deadline passes, then prints a report and exits 0 (all passed) or 1.

Assertions:
  cycle      the healthy cluster goes through a whole rolling upgrade, seen through Prometheus
             (bitbucket_zdu_cluster_state): STABLE -> READY_TO_UPGRADE -> MIXED ->
             READY_TO_RUN_UPGRADE_TASKS -> (RUNNING_UPGRADE_TASKS) -> STABLE
  quiet      no alert ever fires (ALERTS{alertstate="firing"}, polled) except the expected ones
             (--expect ALERTNAME@CLUSTER); the webhook receives nothing for the healthy cluster
  stuck      the stuck-MIXED alert reaches the webhook for the stuck cluster, firing, in exactly
             ONE notification with one alert (one label set, cluster labels only) although three
             sidecars scrape that cluster through a kubernetes-pods job whose pod labels differ
             (controller_revision_hash); Prometheus agrees (one ALERTS series per cluster)
  kill       while the page is pending (the last minutes of MIXED) one sidecar's pod "dies":
             its target leaves service discovery (--file-sd) and its process is killed; the
             page still arrives once, on time (last progress + noProgress + for, progress as
             reported at the page and as Prometheus recorded it)
  unknown    once it paged, the stuck simulator is stopped (Bitbucket unreachable from every
             sidecar): for --unknown-watch seconds the page stays firing in Prometheus, no
             resolve of it ever reaches the webhook, and the unreachable / unobserved alerts
             (--expect-after-unknown) arrive
  dashboard  every query of every dashboard (panel targets, annotations, template variables),
             with Grafana variables substituted, returns data at some point: with the healthy
             cluster selected, except queries that only have data when something is wrong
             (ALERTS, bitbucket_zdu_last_error_info), which must return data with all clusters
  lint       dashboards/lint.py --metrics <exporter output captured during the run> passes

Check holds one run's state: set-up, the faults, and the main loop (Check.iterate, one poll of
everything). The verdicts and reports on the finished run are in check_verdicts.py.
"""
import argparse
import json
import os
import signal
import sys
import time
import urllib.error

from check_verdicts import HEALTHY_CYCLE, Verdicts
from e2elib import (TROUBLE_ONLY, Prom, dashboard_queries, http_get, label_key, read_webhook, run_query,
                    substitute, template_vars, webhook_alerts)

T0 = time.time()


def log(msg):
    print("[e2e %6.1fs] %s" % (time.time() - T0, msg), flush=True)


# ----------------------------------------------------------------------------- command line
def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--webhook-log", required=True)
    ap.add_argument("--healthy-metrics", required=True, help="URL of the healthy cluster's exporter /metrics")
    ap.add_argument("--capture", action="append", default=[], metavar="NAME=URL",
                    help="exporter output to capture at the end (repeatable)")
    ap.add_argument("--out-dir", required=True, help="where captured exporter output goes")
    ap.add_argument("--dashboards", nargs="+", required=True)
    ap.add_argument("--lint", required=True, help="path of dashboards/lint.py")
    ap.add_argument("--rules-json", required=True, help="rendered rules (JSON) loaded by Prometheus")
    ap.add_argument("--job", required=True, help="the job of the healthy cluster's exporter")
    ap.add_argument("--jobs", required=True, help="regex of every job of this set-up (dashboard $job)")
    ap.add_argument("--exporter-job", required=True,
                    help="job of the central exporter's own /metrics: the dashboard's $job must offer it")
    ap.add_argument("--stuck-alert", required=True)
    ap.add_argument("--stuck-no-progress", type=float, required=True, help="seconds (rule threshold)")
    ap.add_argument("--stuck-for", type=float, required=True, help="seconds (rule for:)")
    ap.add_argument("--expect-after-unknown", action="append", default=[], metavar="ALERTNAME@CLUSTER",
                    help="an alert that must fire once the stuck cluster is unknown")
    ap.add_argument("--kill-sidecar", required=True, metavar="PID=INSTANCE",
                    help="the stuck-cluster sidecar to kill while the page is pending")
    ap.add_argument("--file-sd", required=True, help="file_sd file listing the stuck sidecars")
    ap.add_argument("--stop-simulator", type=int, required=True, metavar="PID",
                    help="the stuck cluster's simulator, stopped once the page arrived")
    ap.add_argument("--unknown-watch", type=float, default=30)
    ap.add_argument("--early-capture", action="append", default=[], metavar="NAME=URL",
                    help="exporter output to capture before the faults (repeatable)")
    ap.add_argument("--healthy-cluster", default="healthy")
    ap.add_argument("--stuck-cluster", default="stuck")
    ap.add_argument("--stuck-exporters", type=int, required=True,
                    help="exporters (sidecars, /probe targets) scraped for the stuck cluster")
    ap.add_argument("--expect", action="append", default=[], metavar="ALERTNAME@CLUSTER",
                    help="an alert that may (and must) fire besides the stuck-MIXED one")
    ap.add_argument("--expect-restart", action="append", default=[], metavar="INSTANCE",
                    help="an exporter (instance label) that run.sh restarts during the run")
    ap.add_argument("--targets", type=int, required=True, help="scrape targets expected up")
    ap.add_argument("--scrape-interval", type=float, default=1.0)
    ap.add_argument("--deadline", type=float, default=300, help="seconds")
    ap.add_argument("--settle", type=float, default=10,
                    help="seconds to keep watching after everything is settled (duplicates, late alerts)")
    return ap.parse_args()


# ----------------------------------------------------------------------------- the run
class Check:
    """One run of the checks: what it observed so far, the faults it injected, its verdicts."""

    def __init__(self, args):
        self.args = args
        self.prom = Prom(args.prometheus)
        self.deadline = T0 + args.deadline
        os.makedirs(args.out_dir, exist_ok=True)
        self.stuck_alert = args.stuck_alert
        self.expected = {(args.stuck_alert, args.stuck_cluster)}
        self.after_unknown = set()
        kill_pid, _, self.kill_instance = args.kill_sidecar.partition("=")
        self.kill_pid = int(kill_pid)
        self.healthy_sel = '{job="%s", cluster="%s"}' % (args.job, args.healthy_cluster)
        self.queries = []           # dashboard queries, with variables substituted
        self.states = []            # healthy cluster states in the order Prometheus showed them
        self.state_times = []
        self.cur_state = None
        self.captures = []          # captured exporter outputs (files)
        self.firing_seen = {}       # (alertname, cluster, key) -> first seen (s)
        self.pending_healthy = {}   # alertname -> first seen, pending alerts of the healthy cluster
        self.stuck_alert_at = None
        self.cycle_done_at = None
        self.settled_at = None
        self.violations = []
        self.stuck_exporters_max = 0
        self.start_times = {}       # instance -> process_start_time_seconds
        self.restarts = []          # (seconds, instance)
        self.killed_at = None       # the sidecar killed while the page was pending
        self.unknown_at = None      # the stuck simulator stopped
        self.stuck_gaps = []        # polls during the unknown phase without the page firing
        self.revisions = set()      # controller_revision_hash values seen on the stuck sidecars
        self.now = None             # start of the current (after the loop: the last) iteration
        self.wh = []                # the webhook's alerts, as last read

    # ------------------------------------------------------------------------- set-up
    def load_expected(self):
        """The alerts allowed (and required) to fire; False when one is not in the rules."""
        a = self.args
        rules = json.load(open(a.rules_json, encoding="utf-8"))
        alert_rules = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
        for e in a.expect + a.expect_after_unknown:
            name, _, cluster = e.partition("@")
            self.expected.add((name, cluster))
            if e in a.expect_after_unknown:
                self.after_unknown.add((name, cluster))
        known_alerts = {r["alert"] for r in alert_rules}
        for name, _ in self.expected:
            if name not in known_alerts:
                log("FAIL: expected alert %s is not in the rendered rules" % name)
                return False
        log("stuck-MIXED alert: %s; alerts allowed (and required) to fire: %s"
            % (self.stuck_alert, ", ".join("%s@%s" % e for e in sorted(self.expected))))
        return True

    def wait_for_targets(self):
        """Waits for every target to be up and Alertmanager discovered; False at the deadline."""
        a, prom = self.args, self.prom
        while True:
            try:
                up = prom.query('up{job=~"%s"} == 1' % a.jobs)
                ams = prom.api("alertmanagers", {})["activeAlertmanagers"]
                rule_groups = prom.api("rules", {"type": "alert"})["groups"]
                if len(up) >= a.targets and ams and rule_groups:
                    break
            except (OSError, RuntimeError, ValueError) as e:
                up, ams = [], []
                log("waiting for Prometheus: %s" % e)
            if time.time() > self.deadline:
                log("FAIL: only %d/%d targets up, %d alertmanagers after %.0fs" % (len(up), a.targets, len(ams), a.deadline))
                return False
            time.sleep(1)
        log("Prometheus scrapes %d targets, sends to %s, %d alert rules loaded"
            % (len(up), ams[0]["url"], sum(len(g["rules"]) for g in rule_groups)))
        return True

    def build_queries(self):
        """Every dashboard query, with the Grafana variables substituted for both variants."""
        a = self.args
        scrape = a.scrape_interval
        rate_interval = "%ds" % max(4 * scrape, 2 * scrape)  # Grafana: max(4 x scrape, $__interval + scrape)
        grafana_builtins = {
            "__rate_interval": rate_interval, "__interval": "%ds" % scrape,
            "__interval_ms": str(int(scrape * 1000)), "__range": "5m", "__range_s": "300",
            "__range_ms": "300000", "__from": "0", "__to": "0",
        }
        var_names = template_vars(a.dashboards)
        variants = {}
        for variant, cluster in (("healthy", a.healthy_cluster), ("all", ".*")):
            vals = dict(grafana_builtins)
            for n in var_names:
                vals[n] = ".*"
            vals.update({"datasource": "prometheus", "job": a.jobs, "cluster": cluster, "instance": ".*"})
            variants[variant] = vals
        for where, kind, expr in dashboard_queries(a.dashboards):
            q = {"where": where, "kind": kind, "raw": expr, "trouble_only": bool(TROUBLE_ONLY.search(expr)),
                 "expr": {v: substitute(expr, vals) for v, vals in variants.items()},
                 "first": {}, "errors": []}
            self.queries.append(q)
        log("%d dashboard queries (panels, annotations, variables) from %s"
            % (len(self.queries), ", ".join(os.path.basename(p) for p in a.dashboards)))

    def poll_dashboard(self):
        for q in self.queries:
            for v in ("healthy", "all"):
                if v in q["first"]:
                    continue
                try:
                    n = run_query(self.prom, q["kind"], q["expr"][v])
                except (RuntimeError, ValueError, OSError) as e:
                    if str(e) not in q["errors"]:
                        q["errors"].append(str(e))
                    continue
                if n:
                    q["first"][v] = (time.time() - T0, self.cur_state, n)

    def dashboard_done(self):
        return all("all" in q["first"] and ("healthy" in q["first"] or q["trouble_only"]) for q in self.queries)

    # ------------------------------------------------------------------------- faults, captures
    def kill_sidecar(self):
        # the pod is gone: out of service discovery first (Prometheus drops the target and
        # writes staleness markers), then the process
        file_sd = self.args.file_sd
        with open(file_sd, encoding="utf-8") as f:
            text = f.read()
        blocks = text.split("- targets:")
        kept = [b for b in blocks if b.strip() and ("'%s'" % self.kill_instance) not in b]
        with open(file_sd + ".tmp", "w", encoding="utf-8") as f:
            f.write("".join("- targets:" + b for b in kept))
        os.replace(file_sd + ".tmp", file_sd)
        try:
            os.kill(self.kill_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def capture(self, name, url):
        path = os.path.join(self.args.out_dir, "%02d-%s.txt" % (len(self.captures), name))
        try:
            text = http_get(url)
        except (OSError, urllib.error.URLError) as e:
            log("cannot capture %s from %s: %s" % (name, url, e))
            return
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        self.captures.append(path)

    def capture_all(self, specs):
        """Captures every NAME=URL of specs."""
        for c in specs:
            name, _, url = c.partition("=")
            self.capture(name, url)

    # ------------------------------------------------------------------------- the main loop
    def run_loop(self):
        """Polls until everything is settled (and watched --settle seconds more) or the deadline."""
        self.capture_all(self.args.early_capture)
        while True:
            self.now = time.time()
            if self.iterate():
                break
            time.sleep(max(0.2, 1.0 - (time.time() - self.now)))

    def iterate(self):
        """One poll of everything; True when the loop is over."""
        a, now = self.args, self.now
        self.track_healthy_state()
        if self.cycle_done_at is None:
            self.track_cycle()
        self.track_alerts()
        self.track_webhook()
        if self.stuck_alert_at is not None and self.unknown_at is None:
            self.make_unknown()
        self.poll_dashboard()
        self.track_restarts()
        self.track_stuck_exporters()
        got_expected = {(lab.get("alertname"), lab.get("cluster", "")) for _, s, lab in self.wh if s == "firing"}
        all_there = (self.expected <= got_expected and self.cycle_done_at is not None and self.dashboard_done()
                     and self.unknown_at is not None and now - T0 - self.unknown_at >= a.unknown_watch)
        if all_there and self.settled_at is None:
            self.settled_at = now
            log("everything settled; watching %.0fs more for duplicates and late alerts" % a.settle)
        if self.settled_at is not None and now - self.settled_at >= a.settle:
            return True
        if now > self.deadline:
            log("deadline of %.0fs reached" % a.deadline)
            return True
        return False

    def track_healthy_state(self):
        """The healthy cluster's state as Prometheus sees it; captures its output at each new state."""
        now = self.now
        try:
            res = self.prom.query('max by (state) (bitbucket_zdu_cluster_state%s == 1)' % self.healthy_sel)
            st = sorted(r["metric"].get("state") for r in res)
            st = st[0] if len(st) == 1 else ("|".join(st) if st else None)
        except (RuntimeError, OSError) as e:
            st = None
            log("state query failed: %s" % e)
        if st and st != self.cur_state:
            states = self.states
            self.cur_state = st
            states.append(st)
            self.state_times.append(now - T0)
            log("healthy cluster: %s" % st)
            if sum(1 for s in states if s == st) == 1 or st == "STABLE" and len(states) > 1 and states.count(st) == 2:
                self.capture("healthy-metrics-%s" % st, self.args.healthy_metrics)

    def track_cycle(self):
        # a full cycle: STABLE ... the upgrade states in order ... STABLE again
        seq = [s for s in self.states]
        try:
            i = seq.index("STABLE")
            rest = seq[i + 1:]
            pos = 0
            for s in rest:
                if pos < len(HEALTHY_CYCLE) - 1 and s == HEALTHY_CYCLE[pos + 1]:
                    pos += 1
                elif pos == len(HEALTHY_CYCLE) - 1 and s == "STABLE":
                    self.cycle_done_at = self.now - T0
                    log("healthy cluster completed a whole rolling upgrade (%s)" % " -> ".join(seq))
                    break
        except ValueError:
            pass

    def track_alerts(self):
        """Alerts as Prometheus evaluates them: kills the sidecar while the page is pending, notes
        every firing alert (unexpected ones are violations) and gaps of the page while unknown."""
        a, now = self.args, self.now
        try:
            stuck_firing_now = False
            for r in self.prom.query('ALERTS{alertstate=~"firing|pending"}'):
                m = r["metric"]
                name, cluster, state = m.get("alertname"), m.get("cluster", ""), m.get("alertstate")
                if name == self.stuck_alert and cluster == a.stuck_cluster:
                    if state == "pending" and self.killed_at is None:
                        self.kill_sidecar()
                        self.killed_at = now - T0
                        log("%s pending for the stuck cluster: pod of sidecar %s gone (out of file_sd, process killed)"
                            % (self.stuck_alert, self.kill_instance))
                    if state == "firing":
                        stuck_firing_now = True
                if state == "pending":
                    if cluster == a.healthy_cluster and name not in self.pending_healthy:
                        self.pending_healthy[name] = now - T0
                        log("note: %s pending for the healthy cluster" % name)
                    continue
                self.note_firing(m, name, cluster)
            if self.unknown_at is not None and not stuck_firing_now:
                self.stuck_gaps.append(now - T0)
                log("%s NOT firing for the stuck cluster while it is unknown" % self.stuck_alert)
        except (RuntimeError, OSError) as e:
            log("ALERTS query failed: %s" % e)

    def note_firing(self, m, name, cluster):
        key = (name, cluster, label_key({k: v for k, v in m.items() if k != "alertstate"}))
        if key not in self.firing_seen:
            self.firing_seen[key] = self.now - T0
            log("Prometheus: %s firing for cluster=%r instance=%r" % (name, cluster, m.get("instance")))
            if (name, cluster) not in self.expected:
                self.violations.append("unexpected alert firing in Prometheus: %s" % m)

    def track_webhook(self):
        """What reached the webhook: unexpected alerts are violations; notes when the page arrived."""
        self.wh = webhook_alerts(read_webhook(self.args.webhook_log))
        for rec_t, status, lab in self.wh:
            name, cluster = lab.get("alertname"), lab.get("cluster", "")
            if status == "firing" and (name, cluster) not in self.expected:
                v = "unexpected alert at the webhook: %s" % lab
                if v not in self.violations:
                    self.violations.append(v)
            if (status == "firing" and name == self.stuck_alert and cluster == self.args.stuck_cluster
                    and self.stuck_alert_at is None):
                self.stuck_alert_at = rec_t - T0
                log("webhook: %s firing for cluster %s" % (name, cluster))

    def make_unknown(self):
        """Once it paged: stops the stuck simulator."""
        try:
            os.kill(self.args.stop_simulator, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.unknown_at = self.now - T0
        log("stuck simulator stopped: the stuck cluster is now unknown (Bitbucket unreachable from every sidecar)")

    def track_restarts(self):
        # exporter restarts (process_start_time_seconds changes)
        try:
            for r in self.prom.query('process_start_time_seconds{job=~"%s"}' % self.args.jobs):
                inst, v = r["metric"].get("instance"), float(r["value"][1])
                if inst in self.start_times and self.start_times[inst] != v:
                    self.restarts.append((self.now - T0, inst))
                    log("exporter %s restarted" % inst)
                self.start_times[inst] = v
        except (RuntimeError, OSError) as e:
            log("process_start_time_seconds query failed: %s" % e)

    def track_stuck_exporters(self):
        # how many exporters report the stuck cluster MIXED at once (the alert must still be one)
        a = self.args
        try:
            res = self.prom.query('count(bitbucket_zdu_cluster_state{job=~"%s", cluster="%s", state="MIXED"} == 1)'
                                  % (a.jobs, a.stuck_cluster))
            n = int(float(res[0]["value"][1])) if res else 0
            for r in self.prom.query('up{job=~"%s", cluster="%s"}' % (a.jobs, a.stuck_cluster)):
                self.revisions.add(r["metric"].get("controller_revision_hash", ""))
            if n > self.stuck_exporters_max:
                self.stuck_exporters_max = n
                log("stuck cluster: %d exporter(s) report MIXED" % n)
        except (RuntimeError, OSError) as e:
            log("stuck exporters query failed: %s" % e)


# ----------------------------------------------------------------------------- main
def main():
    check = Check(parse_args())
    if not check.load_expected() or not check.wait_for_targets():
        return 1
    check.build_queries()
    check.run_loop()
    # end captures: every exporter's output as scraped (sidecars, /probe)
    check.capture_all(check.args.capture)
    return Verdicts(check, T0, log).all()


if __name__ == "__main__":
    sys.exit(main())
