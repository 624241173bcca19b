"""Verdicts and reports of the end-to-end assertions (tests/e2e/check.py), from what one run
observed (check.Check); Python 3 stdlib only."""
import subprocess
import sys

from e2elib import LABEL_VALUES_RE, label_key, read_webhook, webhook_alerts

HEALTHY_CYCLE = ["STABLE", "READY_TO_UPGRADE", "MIXED", "READY_TO_RUN_UPGRADE_TASKS"]


class Verdicts:
    """The verdicts on one finished run (a check.Check), its reports and its exit code."""

    def __init__(self, run, t0, log):
        self.run = run
        self.t0 = t0                # when the checks started
        self.log = log
        self.failures = []
        self.wh = []                # the webhook's alerts, read once the run is over
        self.stuck_notifications = 0

    def all(self):
        """Every verdict, the reports and the result line; the exit code."""
        run = self.run
        self.failures = list(run.violations)
        self.judge_faults()
        recs = read_webhook(run.args.webhook_log)
        self.judge_notifications(recs)
        self.judge_after_unknown(recs)
        self.wh = webhook_alerts(read_webhook(run.args.webhook_log))
        self.judge_one_alert()
        self.judge_on_time()
        self.judge_prometheus_alerts()
        self.judge_job_variable()
        self.report_dashboard()
        self.run_lint()
        self.print_timeline()
        return self.result()

    def judge_faults(self):
        """The healthy cycle, the restart, the sidecars, the kill and the unknown phase."""
        run = self.run
        a, failures, states = run.args, self.failures, run.states
        if run.cycle_done_at is None:
            failures.append("the healthy cluster never completed STABLE -> %s -> STABLE in Prometheus (saw %s)"
                            % (" -> ".join(HEALTHY_CYCLE[1:]), " -> ".join(states) or "nothing"))
        if "RUNNING_UPGRADE_TASKS" not in states:
            self.log("note: RUNNING_UPGRADE_TASKS is short at this speed; not seen by the 1s state poll")

        for inst in a.expect_restart:
            if not any(i == inst for _, i in run.restarts):
                failures.append("exporter %s was to be restarted during the run, but Prometheus never saw it restart" % inst)
        if run.stuck_exporters_max < a.stuck_exporters:
            failures.append("at most %d exporter(s) reported the stuck cluster MIXED at once (want %d): the "
                            "one-alert-per-cluster check proves nothing" % (run.stuck_exporters_max, a.stuck_exporters))

        killed_at, unknown_at, now = run.killed_at, run.unknown_at, run.now
        if killed_at is None:
            failures.append("the stuck sidecar was never killed (%s never pending?)" % run.stuck_alert)
        elif run.stuck_alert_at is not None and killed_at > run.stuck_alert_at:
            failures.append("the sidecar was killed after the page, not while it was pending")
        if len(run.revisions - {""}) < 2:
            failures.append("the stuck sidecars did not carry differing controller_revision_hash labels: %s" % run.revisions)
        if unknown_at is None:
            failures.append("the stuck cluster was never made unknown (no page to wait for)")
        elif now - self.t0 - unknown_at < a.unknown_watch:
            failures.append("the unknown phase lasted only %.0fs (want %.0fs)" % (now - self.t0 - unknown_at, a.unknown_watch))
        if run.stuck_gaps:
            failures.append("%s stopped firing while the stuck cluster was unknown, at %s"
                            % (run.stuck_alert, ", ".join("%.1fs" % t for t in run.stuck_gaps[:5])))

    def judge_notifications(self, recs):
        """The page's notifications: never resolved, no per-pod label, exactly one per cluster."""
        run = self.run
        failures, stuck_alert = self.failures, run.stuck_alert
        notif_per_cluster = {}
        for r in recs:
            for a in (r.get("body") or {}).get("alerts") or []:
                lab = a.get("labels") or {}
                if lab.get("alertname") != stuck_alert:
                    continue
                c = lab.get("cluster", "")
                if a.get("status") == "resolved":
                    failures.append("%s was RESOLVED at the webhook for cluster %s at %.1fs (still stuck or unknown)"
                                    % (stuck_alert, c, r["received"] - self.t0))
                else:
                    notif_per_cluster[c] = notif_per_cluster.get(c, 0) + 1
                leaked = sorted(set(lab) & {"pod", "instance", "controller_revision_hash",
                                            "statefulset_kubernetes_io_pod_name", "container"})
                if leaked:
                    failures.append("%s carries per-pod labels %s: %s" % (stuck_alert, leaked, lab))
        self.stuck_notifications = notif_per_cluster.get(run.args.stuck_cluster, 0)
        for c, n in notif_per_cluster.items():
            if n != 1:
                failures.append("%s reached the webhook in %d firing notifications for cluster %s (want exactly 1)"
                                % (stuck_alert, n, c))

    def judge_after_unknown(self, recs):
        run = self.run
        unknown_at = run.unknown_at
        for name, cluster in sorted(run.after_unknown):
            firsts = [rt - self.t0 for rt, s, lab in webhook_alerts(recs)
                      if s == "firing" and lab.get("alertname") == name and lab.get("cluster", "") == cluster]
            if firsts and unknown_at is not None and min(firsts) < unknown_at:
                self.failures.append("%s fired for %s before the cluster was made unknown" % (name, cluster))
            elif firsts and unknown_at is not None:
                self.log("%s reached the webhook %.1fs after the cluster became unknown" % (name, min(firsts) - unknown_at))

    def judge_one_alert(self):
        """The page reached the webhook as one alert per cluster; nothing for the healthy cluster."""
        run = self.run
        a, failures, stuck_alert = run.args, self.failures, run.stuck_alert
        per_cluster = {}
        for _, status, lab in self.wh:
            if status == "firing" and lab.get("alertname") == stuck_alert:
                per_cluster.setdefault(lab.get("cluster", ""), set()).add(label_key(lab))
        if a.stuck_cluster not in per_cluster:
            failures.append("%s never reached the webhook for cluster %s" % (stuck_alert, a.stuck_cluster))
        for cluster, keys in per_cluster.items():
            if len(keys) != 1:
                failures.append("%s reached the webhook as %d different alerts for cluster %s (want exactly one): %s"
                                % (stuck_alert, len(keys), cluster, [dict(k) for k in keys]))
        healthy_wh = [lab for _, _, lab in self.wh if lab.get("cluster") == a.healthy_cluster]
        if healthy_wh:
            failures.append("the webhook received %d alert(s) for the healthy cluster: %s" % (len(healthy_wh), healthy_wh))

    def judge_on_time(self):
        # on time? The rules count from the last progress they can know of: the earliest sidecar's
        # last node change AS REPORTED WHEN THE PAGE WAS SENT (a sidecar restarted without a state
        # file reports its own first poll instead, and which sidecar's series Prometheus recorded
        # last, once the simulator is stopped, is a race), and Prometheus's own history (the
        # no-change rules: MIXED seen `noProgress` ago, nothing changed since), which starts at
        # the first sample it recorded. Never earlier than progress + noProgress + for; at most
        # 30 s later than the later of the two.
        run = self.run
        threshold, for_s = run.args.stuck_no_progress, run.args.stuck_for
        failures, stuck_alert, stuck_alert_at = self.failures, run.stuck_alert, run.stuck_alert_at
        reported, first_seen = self.last_progress() if stuck_alert_at is not None else (None, None)
        if reported and first_seen and stuck_alert_at is not None:
            page = stuck_alert_at + self.t0
            known = max(reported, first_seen)
            self.log("stuck cluster: last node change reported at %.1fs, MIXED first recorded by Prometheus at %.1fs; "
                     "%s reached the webhook %.1fs after the first, %.1fs after the later (rule: no progress for %.0fs + "
                     "for %.0fs)" % (reported - self.t0, first_seen - self.t0, stuck_alert, page - reported,
                                     page - known, threshold, for_s))
            if page - reported < threshold + for_s:
                failures.append("%s reached the webhook %.1fs after the last progress (reported at the page); the rule "
                                "says %.0fs + %.0fs" % (stuck_alert, page - reported, threshold, for_s))
            if page - known > threshold + for_s + 30:
                failures.append("%s reached the webhook %.1fs after the last progress Prometheus could know of; the rule "
                                "says %.0fs + %.0fs" % (stuck_alert, page - known, threshold, for_s))
        elif stuck_alert_at is not None:
            failures.append("no bitbucket_zdu:node_state_last_change_timestamp_seconds:min or MIXED sample for the stuck "
                            "cluster at the page")

    def last_progress(self):
        """(last node change as reported at the page, MIXED first recorded by Prometheus); None when unknown."""
        run = self.run
        reported = first_seen = None
        at = "%.3f" % (run.stuck_alert_at + self.t0)
        stuck_cluster = run.args.stuck_cluster
        sel = '{cluster="%s"}' % stuck_cluster
        try:
            res = run.prom.api("query", {"query": "min(bitbucket_zdu:node_state_last_change_timestamp_seconds:min%s)"
                                          % sel, "time": at})["result"]
            reported = float(res[0]["value"][1]) if res else None
            res = run.prom.api("query", {"query": 'min(min_over_time(timestamp(bitbucket_zdu:cluster_state:max{cluster="%s", '
                                                   'state="MIXED"} == 1)[30m:1s]))' % stuck_cluster,
                                          "time": at})["result"]
            first_seen = float(res[0]["value"][1]) if res else None
        except (RuntimeError, OSError) as e:
            self.log("last-progress queries failed: %s" % e)
        return reported, first_seen

    def judge_prometheus_alerts(self):
        """One firing page series in Prometheus; every expected alert fired there and at the webhook."""
        run = self.run
        failures, stuck_alert, stuck_cluster = self.failures, run.stuck_alert, run.args.stuck_cluster
        try:
            series = run.prom.query('ALERTS{alertname="%s", alertstate="firing"}' % stuck_alert)
            n_stuck = [r for r in series if r["metric"].get("cluster") == stuck_cluster]
            if len(n_stuck) != 1:
                failures.append("Prometheus has %d firing %s series for cluster %s (want 1): %s"
                                % (len(n_stuck), stuck_alert, stuck_cluster, [r["metric"] for r in n_stuck]))
        except (RuntimeError, OSError) as e:
            failures.append("final ALERTS query failed: %s" % e)
        for name, cluster in sorted(run.expected):
            if not any(k[0] == name and k[1] == cluster for k in run.firing_seen):
                failures.append("expected alert %s never fired in Prometheus for cluster %s" % (name, cluster))
            if not any(s == "firing" and lab.get("alertname") == name and lab.get("cluster", "") == cluster
                       for _, s, lab in self.wh):
                failures.append("expected alert %s never reached the webhook for cluster %s" % (name, cluster))

    def judge_job_variable(self):
        # /probe mode: the exporter's own job is selectable in the dashboard ($job offers it)
        run = self.run
        job_vars = [q for q in run.queries if q["kind"] == "variable" and q["where"].endswith("variable job")]
        if len(job_vars) != 1:
            self.failures.append("the dashboard has no (single) $job variable query")
        else:
            m = LABEL_VALUES_RE.match(job_vars[0]["expr"]["all"])
            jobs = run.prom.api("label/%s/values" % m.group(2), {"match[]": m.group(1)}) if m else []
            self.log("dashboard $job offers %s" % jobs)
            if run.args.exporter_job not in jobs:
                self.failures.append("the dashboard's $job does not offer the exporter's own job %s (offers %s)"
                                     % (run.args.exporter_job, jobs))

    # ------------------------------------------------------------------------- reports
    def report_dashboard(self):
        run = self.run
        print("\n---- dashboard queries (first time with data: seconds since start, healthy cluster state then)")
        for q in run.queries:
            h, a = q["first"].get("healthy"), q["first"].get("all")
            fmt = lambda x: "%5.1fs %-27s %3d result(s)" % x if x else "never"
            label = "trouble-only " if q["trouble_only"] else ""
            print("  %s%s\n      healthy: %s\n      all:     %s" % (label, q["where"], fmt(h), fmt(a)))
            if q["errors"]:
                print("      errors: %s" % q["errors"][:2])
            if a is None:
                self.failures.append("dashboard query never returned data (not even with all clusters): %s: %s%s"
                                     % (q["where"], q["expr"]["all"], " errors: %s" % q["errors"][:1] if q["errors"] else ""))
            elif h is None and not q["trouble_only"]:
                self.failures.append("dashboard query never returned data for the healthy cluster: %s: %s"
                                     % (q["where"], q["expr"]["healthy"]))

    def run_lint(self):
        # lint with the real exporter output
        run = self.run
        a, captures = run.args, run.captures
        print("\n---- dashboards/lint.py with the real exporter output (%d captures)" % len(captures))
        for c in captures:
            print("  " + c)
        cmd = [sys.executable, a.lint, "--rules", a.rules_json]
        for c in captures:
            cmd += ["--metrics", c]
        cmd += a.dashboards
        lint = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(lint.stdout.rstrip() or "  (no output)")
        if lint.returncode != 0:
            self.failures.append("dashboards/lint.py --metrics <real output> failed (exit %d)" % lint.returncode)
        if not captures:
            self.failures.append("no exporter output captured")

    def print_timeline(self):
        run = self.run
        print("\n---- timeline (seconds since the checks started)")
        events = [(t, "healthy cluster %s" % s) for t, s in zip(run.state_times, run.states)]
        events += [(t, "Prometheus: %s firing (cluster %s)" % (name, cluster or "-"))
                   for (name, cluster, _), t in run.firing_seen.items()]
        events += [(t, "Prometheus: %s pending for the healthy cluster (never fired)" % name)
                   for name, t in run.pending_healthy.items()]
        events += [(t, "exporter %s restarted (seen through process_start_time_seconds)" % i) for t, i in run.restarts]
        if run.killed_at is not None:
            events.append((run.killed_at, "sidecar %s killed, its pod gone from service discovery (page pending)"
                           % run.kill_instance))
        if run.unknown_at is not None:
            events.append((run.unknown_at, "stuck simulator stopped: stuck cluster unknown"))
        for r in read_webhook(run.args.webhook_log):
            for a in (r.get("body") or {}).get("alerts") or []:
                lab = a.get("labels") or {}
                events.append((r["received"] - self.t0, "webhook: %s %s (cluster %s, severity %s)" % (
                    a.get("status"), lab.get("alertname"), lab.get("cluster", "-"), lab.get("severity"))))
        for t, what in sorted(events, key=lambda e: e[0]):
            print("  %6.1fs  %s" % (t, what))

    def result(self):
        run = self.run
        print("\n---- result")
        if self.failures:
            for f in self.failures:
                print("FAIL: " + f)
            return 1
        print("PASS: healthy rolling upgrade cycle seen at %.1fs with no alert; %s reached the webhook in %d "
              "notification for cluster %s at %.1fs (sidecar killed at %.1fs while pending), never resolved while "
              "unknown for %.0fs; %d dashboard queries returned data; lint passed on real output"
              % (run.cycle_done_at, run.stuck_alert, self.stuck_notifications, run.args.stuck_cluster,
                 run.stuck_alert_at or -1, run.killed_at or -1, run.now - self.t0 - (run.unknown_at or 0),
                 len(run.queries)))
        return 0
