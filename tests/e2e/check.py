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
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error

from e2elib import (LABEL_VALUES_RE, TROUBLE_ONLY, Prom, dashboard_queries, http_get, label_key,
                    read_webhook, run_query, substitute, template_vars, webhook_alerts)

T0 = time.time()
HEALTHY_CYCLE = ["STABLE", "READY_TO_UPGRADE", "MIXED", "READY_TO_RUN_UPGRADE_TASKS"]


def log(msg):
    print("[e2e %6.1fs] %s" % (time.time() - T0, msg), flush=True)


# ----------------------------------------------------------------------------- main
def main():
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
    args = ap.parse_args()

    prom = Prom(args.prometheus)
    deadline = T0 + args.deadline
    os.makedirs(args.out_dir, exist_ok=True)

    rules = json.load(open(args.rules_json, encoding="utf-8"))
    alert_rules = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    stuck_alert = args.stuck_alert
    expected = {(stuck_alert, args.stuck_cluster)}
    after_unknown = set()
    for e in args.expect + args.expect_after_unknown:
        name, _, cluster = e.partition("@")
        expected.add((name, cluster))
        if e in args.expect_after_unknown:
            after_unknown.add((name, cluster))
    kill_pid, _, kill_instance = args.kill_sidecar.partition("=")
    kill_pid = int(kill_pid)
    known_alerts = {r["alert"] for r in alert_rules}
    for name, _ in expected:
        if name not in known_alerts:
            log("FAIL: expected alert %s is not in the rendered rules" % name)
            return 1
    log("stuck-MIXED alert: %s; alerts allowed (and required) to fire: %s"
        % (stuck_alert, ", ".join("%s@%s" % e for e in sorted(expected))))

    # ---- wait for every target to be up and Alertmanager discovered
    while True:
        try:
            up = prom.query('up{job=~"%s"} == 1' % args.jobs)
            ams = prom.api("alertmanagers", {})["activeAlertmanagers"]
            rule_groups = prom.api("rules", {"type": "alert"})["groups"]
            if len(up) >= args.targets and ams and rule_groups:
                break
        except (OSError, RuntimeError, ValueError) as e:
            up, ams = [], []
            log("waiting for Prometheus: %s" % e)
        if time.time() > deadline:
            log("FAIL: only %d/%d targets up, %d alertmanagers after %.0fs" % (len(up), args.targets, len(ams), args.deadline))
            return 1
        time.sleep(1)
    log("Prometheus scrapes %d targets, sends to %s, %d alert rules loaded"
        % (len(up), ams[0]["url"], sum(len(g["rules"]) for g in rule_groups)))

    # ---- dashboard queries, with variables substituted
    scrape = args.scrape_interval
    rate_interval = "%ds" % max(4 * scrape, 2 * scrape)  # Grafana: max(4 x scrape, $__interval + scrape)
    grafana_builtins = {
        "__rate_interval": rate_interval, "__interval": "%ds" % scrape,
        "__interval_ms": str(int(scrape * 1000)), "__range": "5m", "__range_s": "300",
        "__range_ms": "300000", "__from": "0", "__to": "0",
    }
    var_names = template_vars(args.dashboards)
    variants = {}
    for variant, cluster in (("healthy", args.healthy_cluster), ("all", ".*")):
        vals = dict(grafana_builtins)
        for n in var_names:
            vals[n] = ".*"
        vals.update({"datasource": "prometheus", "job": args.jobs, "cluster": cluster, "instance": ".*"})
        variants[variant] = vals
    queries = []
    for where, kind, expr in dashboard_queries(args.dashboards):
        q = {"where": where, "kind": kind, "raw": expr, "trouble_only": bool(TROUBLE_ONLY.search(expr)),
             "expr": {v: substitute(expr, vals) for v, vals in variants.items()},
             "first": {}, "errors": []}
        queries.append(q)
    log("%d dashboard queries (panels, annotations, variables) from %s"
        % (len(queries), ", ".join(os.path.basename(p) for p in args.dashboards)))

    def poll_dashboard():
        for q in queries:
            for v in ("healthy", "all"):
                if v in q["first"]:
                    continue
                try:
                    n = run_query(prom, q["kind"], q["expr"][v])
                except (RuntimeError, ValueError, OSError) as e:
                    if str(e) not in q["errors"]:
                        q["errors"].append(str(e))
                    continue
                if n:
                    q["first"][v] = (time.time() - T0, cur_state, n)

    def dashboard_done():
        return all("all" in q["first"] and ("healthy" in q["first"] or q["trouble_only"]) for q in queries)

    # ---- main loop
    states = []            # healthy cluster states in the order Prometheus showed them
    state_times = []
    cur_state = None
    captures = []          # captured exporter outputs (files)
    firing_seen = {}       # (alertname, cluster, key) -> first seen (s)
    pending_healthy = {}   # alertname -> first seen, pending alerts of the healthy cluster
    stuck_alert_at = None
    cycle_done_at = None
    settled_at = None
    violations = []
    stuck_exporters_max = 0
    start_times = {}       # instance -> process_start_time_seconds
    restarts = []          # (seconds, instance)
    healthy_sel = '{job="%s", cluster="%s"}' % (args.job, args.healthy_cluster)
    killed_at = None       # the sidecar killed while the page was pending
    unknown_at = None      # the stuck simulator stopped
    stuck_gaps = []        # polls during the unknown phase without the page firing
    stuck_notifications = 0
    revisions = set()      # controller_revision_hash values seen on the stuck sidecars

    def kill_sidecar():
        # the pod is gone: out of service discovery first (Prometheus drops the target and
        # writes staleness markers), then the process
        with open(args.file_sd, encoding="utf-8") as f:
            text = f.read()
        blocks = text.split("- targets:")
        kept = [b for b in blocks if b.strip() and ("'%s'" % kill_instance) not in b]
        with open(args.file_sd + ".tmp", "w", encoding="utf-8") as f:
            f.write("".join("- targets:" + b for b in kept))
        os.replace(args.file_sd + ".tmp", args.file_sd)
        try:
            os.kill(kill_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def capture(name, url):
        path = os.path.join(args.out_dir, "%02d-%s.txt" % (len(captures), name))
        try:
            text = http_get(url)
        except (OSError, urllib.error.URLError) as e:
            log("cannot capture %s from %s: %s" % (name, url, e))
            return
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        captures.append(path)

    for c in args.early_capture:
        name, _, url = c.partition("=")
        capture(name, url)

    while True:
        now = time.time()
        # healthy cluster state as Prometheus sees it
        try:
            res = prom.query('max by (state) (bitbucket_zdu_cluster_state%s == 1)' % healthy_sel)
            st = sorted(r["metric"].get("state") for r in res)
            st = st[0] if len(st) == 1 else ("|".join(st) if st else None)
        except (RuntimeError, OSError) as e:
            st = None
            log("state query failed: %s" % e)
        if st and st != cur_state:
            cur_state = st
            states.append(st)
            state_times.append(now - T0)
            log("healthy cluster: %s" % st)
            if sum(1 for s in states if s == st) == 1 or st == "STABLE" and len(states) > 1 and states.count(st) == 2:
                capture("healthy-metrics-%s" % st, args.healthy_metrics)
        if cycle_done_at is None:
            # a full cycle: STABLE ... the upgrade states in order ... STABLE again
            seq = [s for s in states]
            try:
                i = seq.index("STABLE")
                rest = seq[i + 1:]
                pos = 0
                for s in rest:
                    if pos < len(HEALTHY_CYCLE) - 1 and s == HEALTHY_CYCLE[pos + 1]:
                        pos += 1
                    elif pos == len(HEALTHY_CYCLE) - 1 and s == "STABLE":
                        cycle_done_at = now - T0
                        log("healthy cluster completed a whole rolling upgrade (%s)" % " -> ".join(seq))
                        break
            except ValueError:
                pass

        # alerts, as Prometheus evaluates them
        try:
            stuck_firing_now = False
            for r in prom.query('ALERTS{alertstate=~"firing|pending"}'):
                m = r["metric"]
                name, cluster, state = m.get("alertname"), m.get("cluster", ""), m.get("alertstate")
                if name == stuck_alert and cluster == args.stuck_cluster:
                    if state == "pending" and killed_at is None:
                        kill_sidecar()
                        killed_at = now - T0
                        log("%s pending for the stuck cluster: pod of sidecar %s gone (out of file_sd, process killed)"
                            % (stuck_alert, kill_instance))
                    if state == "firing":
                        stuck_firing_now = True
                if state == "pending":
                    if cluster == args.healthy_cluster and name not in pending_healthy:
                        pending_healthy[name] = now - T0
                        log("note: %s pending for the healthy cluster" % name)
                    continue
                key = (name, cluster, label_key({k: v for k, v in m.items() if k != "alertstate"}))
                if key not in firing_seen:
                    firing_seen[key] = now - T0
                    log("Prometheus: %s firing for cluster=%r instance=%r" % (name, cluster, m.get("instance")))
                    if (name, cluster) not in expected:
                        violations.append("unexpected alert firing in Prometheus: %s" % m)
            if unknown_at is not None and not stuck_firing_now:
                stuck_gaps.append(now - T0)
                log("%s NOT firing for the stuck cluster while it is unknown" % stuck_alert)
        except (RuntimeError, OSError) as e:
            log("ALERTS query failed: %s" % e)

        # the webhook
        wh = webhook_alerts(read_webhook(args.webhook_log))
        for rec_t, status, lab in wh:
            name, cluster = lab.get("alertname"), lab.get("cluster", "")
            if status == "firing" and (name, cluster) not in expected:
                v = "unexpected alert at the webhook: %s" % lab
                if v not in violations:
                    violations.append(v)
            if status == "firing" and name == stuck_alert and cluster == args.stuck_cluster and stuck_alert_at is None:
                stuck_alert_at = rec_t - T0
                log("webhook: %s firing for cluster %s" % (name, cluster))
        if stuck_alert_at is not None and unknown_at is None:
            try:
                os.kill(args.stop_simulator, signal.SIGTERM)
            except ProcessLookupError:
                pass
            unknown_at = now - T0
            log("stuck simulator stopped: the stuck cluster is now unknown (Bitbucket unreachable from every sidecar)")

        poll_dashboard()

        # exporter restarts (process_start_time_seconds changes)
        try:
            for r in prom.query('process_start_time_seconds{job=~"%s"}' % args.jobs):
                inst, v = r["metric"].get("instance"), float(r["value"][1])
                if inst in start_times and start_times[inst] != v:
                    restarts.append((now - T0, inst))
                    log("exporter %s restarted" % inst)
                start_times[inst] = v
        except (RuntimeError, OSError) as e:
            log("process_start_time_seconds query failed: %s" % e)

        # how many exporters report the stuck cluster MIXED at once (the alert must still be one)
        try:
            res = prom.query('count(bitbucket_zdu_cluster_state{job=~"%s", cluster="%s", state="MIXED"} == 1)'
                             % (args.jobs, args.stuck_cluster))
            n = int(float(res[0]["value"][1])) if res else 0
            for r in prom.query('up{job=~"%s", cluster="%s"}' % (args.jobs, args.stuck_cluster)):
                revisions.add(r["metric"].get("controller_revision_hash", ""))
            if n > stuck_exporters_max:
                stuck_exporters_max = n
                log("stuck cluster: %d exporter(s) report MIXED" % n)
        except (RuntimeError, OSError) as e:
            log("stuck exporters query failed: %s" % e)

        got_expected = {(lab.get("alertname"), lab.get("cluster", "")) for _, s, lab in wh if s == "firing"}
        all_there = (expected <= got_expected and cycle_done_at is not None and dashboard_done()
                     and unknown_at is not None and now - T0 - unknown_at >= args.unknown_watch)
        if all_there and settled_at is None:
            settled_at = now
            log("everything settled; watching %.0fs more for duplicates and late alerts" % args.settle)
        if settled_at is not None and now - settled_at >= args.settle:
            break
        if now > deadline:
            log("deadline of %.0fs reached" % args.deadline)
            break
        time.sleep(max(0.2, 1.0 - (time.time() - now)))

    # ---- end captures: every exporter's output as scraped (sidecars, /probe)
    for c in args.capture:
        name, _, url = c.partition("=")
        capture(name, url)

    # ---- verdicts
    failures = list(violations)
    if cycle_done_at is None:
        failures.append("the healthy cluster never completed STABLE -> %s -> STABLE in Prometheus (saw %s)"
                        % (" -> ".join(HEALTHY_CYCLE[1:]), " -> ".join(states) or "nothing"))
    if "RUNNING_UPGRADE_TASKS" not in states:
        log("note: RUNNING_UPGRADE_TASKS is short at this speed; not seen by the 1s state poll")

    for inst in args.expect_restart:
        if not any(i == inst for _, i in restarts):
            failures.append("exporter %s was to be restarted during the run, but Prometheus never saw it restart" % inst)
    if stuck_exporters_max < args.stuck_exporters:
        failures.append("at most %d exporter(s) reported the stuck cluster MIXED at once (want %d): the "
                        "one-alert-per-cluster check proves nothing" % (stuck_exporters_max, args.stuck_exporters))

    if killed_at is None:
        failures.append("the stuck sidecar was never killed (%s never pending?)" % stuck_alert)
    elif stuck_alert_at is not None and killed_at > stuck_alert_at:
        failures.append("the sidecar was killed after the page, not while it was pending")
    if len(revisions - {""}) < 2:
        failures.append("the stuck sidecars did not carry differing controller_revision_hash labels: %s" % revisions)
    if unknown_at is None:
        failures.append("the stuck cluster was never made unknown (no page to wait for)")
    elif now - T0 - unknown_at < args.unknown_watch:
        failures.append("the unknown phase lasted only %.0fs (want %.0fs)" % (now - T0 - unknown_at, args.unknown_watch))
    if stuck_gaps:
        failures.append("%s stopped firing while the stuck cluster was unknown, at %s"
                        % (stuck_alert, ", ".join("%.1fs" % t for t in stuck_gaps[:5])))
    recs = read_webhook(args.webhook_log)
    notif_per_cluster = {}
    for r in recs:
        for a in (r.get("body") or {}).get("alerts") or []:
            lab = a.get("labels") or {}
            if lab.get("alertname") != stuck_alert:
                continue
            c = lab.get("cluster", "")
            if a.get("status") == "resolved":
                failures.append("%s was RESOLVED at the webhook for cluster %s at %.1fs (still stuck or unknown)"
                                % (stuck_alert, c, r["received"] - T0))
            else:
                notif_per_cluster[c] = notif_per_cluster.get(c, 0) + 1
            leaked = sorted(set(lab) & {"pod", "instance", "controller_revision_hash",
                                        "statefulset_kubernetes_io_pod_name", "container"})
            if leaked:
                failures.append("%s carries per-pod labels %s: %s" % (stuck_alert, leaked, lab))
    stuck_notifications = notif_per_cluster.get(args.stuck_cluster, 0)
    for c, n in notif_per_cluster.items():
        if n != 1:
            failures.append("%s reached the webhook in %d firing notifications for cluster %s (want exactly 1)"
                            % (stuck_alert, n, c))
    for name, cluster in sorted(after_unknown):
        firsts = [rt - T0 for rt, s, lab in webhook_alerts(recs)
                  if s == "firing" and lab.get("alertname") == name and lab.get("cluster", "") == cluster]
        if firsts and unknown_at is not None and min(firsts) < unknown_at:
            failures.append("%s fired for %s before the cluster was made unknown" % (name, cluster))
        elif firsts and unknown_at is not None:
            log("%s reached the webhook %.1fs after the cluster became unknown" % (name, min(firsts) - unknown_at))

    wh = webhook_alerts(read_webhook(args.webhook_log))
    per_cluster = {}
    for _, status, lab in wh:
        if status == "firing" and lab.get("alertname") == stuck_alert:
            per_cluster.setdefault(lab.get("cluster", ""), set()).add(label_key(lab))
    if args.stuck_cluster not in per_cluster:
        failures.append("%s never reached the webhook for cluster %s" % (stuck_alert, args.stuck_cluster))
    for cluster, keys in per_cluster.items():
        if len(keys) != 1:
            failures.append("%s reached the webhook as %d different alerts for cluster %s (want exactly one): %s"
                            % (stuck_alert, len(keys), cluster, [dict(k) for k in keys]))
    healthy_wh = [lab for _, _, lab in wh if lab.get("cluster") == args.healthy_cluster]
    if healthy_wh:
        failures.append("the webhook received %d alert(s) for the healthy cluster: %s" % (len(healthy_wh), healthy_wh))
    # on time? The rules count from the last progress they can know of: the earliest sidecar's
    # last node change AS REPORTED WHEN THE PAGE WAS SENT (a sidecar restarted without a state
    # file reports its own first poll instead, and which sidecar's series Prometheus recorded
    # last, once the simulator is stopped, is a race), and Prometheus's own history (the
    # no-change rules: MIXED seen `noProgress` ago, nothing changed since), which starts at
    # the first sample it recorded. Never earlier than progress + noProgress + for; at most
    # 30 s later than the later of the two.
    threshold, for_s = args.stuck_no_progress, args.stuck_for
    reported = first_seen = None
    if stuck_alert_at is not None:
        at = "%.3f" % (stuck_alert_at + T0)
        sel = '{cluster="%s"}' % args.stuck_cluster
        try:
            res = prom.api("query", {"query": "min(bitbucket_zdu:node_state_last_change_timestamp_seconds:min%s)" % sel,
                                     "time": at})["result"]
            reported = float(res[0]["value"][1]) if res else None
            res = prom.api("query", {"query": 'min(min_over_time(timestamp(bitbucket_zdu:cluster_state:max{cluster="%s", '
                                              'state="MIXED"} == 1)[30m:1s]))' % args.stuck_cluster,
                                     "time": at})["result"]
            first_seen = float(res[0]["value"][1]) if res else None
        except (RuntimeError, OSError) as e:
            log("last-progress queries failed: %s" % e)
    if reported and first_seen and stuck_alert_at is not None:
        page = stuck_alert_at + T0
        known = max(reported, first_seen)
        log("stuck cluster: last node change reported at %.1fs, MIXED first recorded by Prometheus at %.1fs; "
            "%s reached the webhook %.1fs after the first, %.1fs after the later (rule: no progress for %.0fs + "
            "for %.0fs)" % (reported - T0, first_seen - T0, stuck_alert, page - reported, page - known,
                            threshold, for_s))
        if page - reported < threshold + for_s:
            failures.append("%s reached the webhook %.1fs after the last progress (reported at the page); the rule "
                            "says %.0fs + %.0fs" % (stuck_alert, page - reported, threshold, for_s))
        if page - known > threshold + for_s + 30:
            failures.append("%s reached the webhook %.1fs after the last progress Prometheus could know of; the rule "
                            "says %.0fs + %.0fs" % (stuck_alert, page - known, threshold, for_s))
    elif stuck_alert_at is not None:
        failures.append("no bitbucket_zdu:node_state_last_change_timestamp_seconds:min or MIXED sample for the stuck "
                        "cluster at the page")
    try:
        series = prom.query('ALERTS{alertname="%s", alertstate="firing"}' % stuck_alert)
        n_stuck = [r for r in series if r["metric"].get("cluster") == args.stuck_cluster]
        if len(n_stuck) != 1:
            failures.append("Prometheus has %d firing %s series for cluster %s (want 1): %s"
                            % (len(n_stuck), stuck_alert, args.stuck_cluster, [r["metric"] for r in n_stuck]))
    except (RuntimeError, OSError) as e:
        failures.append("final ALERTS query failed: %s" % e)
    for name, cluster in sorted(expected):
        if not any(k[0] == name and k[1] == cluster for k in firing_seen):
            failures.append("expected alert %s never fired in Prometheus for cluster %s" % (name, cluster))
        if not any(s == "firing" and lab.get("alertname") == name and lab.get("cluster", "") == cluster
                   for _, s, lab in wh):
            failures.append("expected alert %s never reached the webhook for cluster %s" % (name, cluster))

    # /probe mode: the exporter's own job is selectable in the dashboard ($job offers it)
    job_vars = [q for q in queries if q["kind"] == "variable" and q["where"].endswith("variable job")]
    if len(job_vars) != 1:
        failures.append("the dashboard has no (single) $job variable query")
    else:
        m = LABEL_VALUES_RE.match(job_vars[0]["expr"]["all"])
        jobs = prom.api("label/%s/values" % m.group(2), {"match[]": m.group(1)}) if m else []
        log("dashboard $job offers %s" % jobs)
        if args.exporter_job not in jobs:
            failures.append("the dashboard's $job does not offer the exporter's own job %s (offers %s)"
                            % (args.exporter_job, jobs))

    # dashboard report
    print("\n---- dashboard queries (first time with data: seconds since start, healthy cluster state then)")
    for q in queries:
        h, a = q["first"].get("healthy"), q["first"].get("all")
        fmt = lambda x: "%5.1fs %-27s %3d result(s)" % x if x else "never"
        label = "trouble-only " if q["trouble_only"] else ""
        print("  %s%s\n      healthy: %s\n      all:     %s" % (label, q["where"], fmt(h), fmt(a)))
        if q["errors"]:
            print("      errors: %s" % q["errors"][:2])
        if a is None:
            failures.append("dashboard query never returned data (not even with all clusters): %s: %s%s"
                            % (q["where"], q["expr"]["all"], " errors: %s" % q["errors"][:1] if q["errors"] else ""))
        elif h is None and not q["trouble_only"]:
            failures.append("dashboard query never returned data for the healthy cluster: %s: %s"
                            % (q["where"], q["expr"]["healthy"]))

    # lint with the real exporter output
    print("\n---- dashboards/lint.py with the real exporter output (%d captures)" % len(captures))
    for c in captures:
        print("  " + c)
    cmd = [sys.executable, args.lint, "--rules", args.rules_json]
    for c in captures:
        cmd += ["--metrics", c]
    cmd += args.dashboards
    lint = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(lint.stdout.rstrip() or "  (no output)")
    if lint.returncode != 0:
        failures.append("dashboards/lint.py --metrics <real output> failed (exit %d)" % lint.returncode)
    if not captures:
        failures.append("no exporter output captured")

    # timeline
    print("\n---- timeline (seconds since the checks started)")
    events = [(t, "healthy cluster %s" % s) for t, s in zip(state_times, states)]
    events += [(t, "Prometheus: %s firing (cluster %s)" % (name, cluster or "-"))
               for (name, cluster, _), t in firing_seen.items()]
    events += [(t, "Prometheus: %s pending for the healthy cluster (never fired)" % name)
               for name, t in pending_healthy.items()]
    events += [(t, "exporter %s restarted (seen through process_start_time_seconds)" % i) for t, i in restarts]
    if killed_at is not None:
        events.append((killed_at, "sidecar %s killed, its pod gone from service discovery (page pending)" % kill_instance))
    if unknown_at is not None:
        events.append((unknown_at, "stuck simulator stopped: stuck cluster unknown"))
    for r in read_webhook(args.webhook_log):
        for a in (r.get("body") or {}).get("alerts") or []:
            lab = a.get("labels") or {}
            events.append((r["received"] - T0, "webhook: %s %s (cluster %s, severity %s)" % (
                a.get("status"), lab.get("alertname"), lab.get("cluster", "-"), lab.get("severity"))))
    for t, what in sorted(events, key=lambda e: e[0]):
        print("  %6.1fs  %s" % (t, what))

    print("\n---- result")
    if failures:
        for f in failures:
            print("FAIL: " + f)
        return 1
    print("PASS: healthy rolling upgrade cycle seen at %.1fs with no alert; %s reached the webhook in %d "
          "notification for cluster %s at %.1fs (sidecar killed at %.1fs while pending), never resolved while "
          "unknown for %.0fs; %d dashboard queries returned data; lint passed on real output"
          % (cycle_done_at, stuck_alert, stuck_notifications, args.stuck_cluster, stuck_alert_at or -1,
             killed_at or -1, now - T0 - (unknown_at or 0), len(queries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
