#!/usr/bin/env python3
"""Faults and assertions of tests/e2e/ha.sh (Python 3 stdlib only; docs/e2e.md).

Three clusters run at once against two Prometheus replicas and two clustered Alertmanagers:
  healthy12  a 12-node rolling upgrade, one sidecar per pod; every pod is "replaced" with its
             node (sidecar killed and target gone while the node is OFFLINE, then back with
             a new revision label) -> no notification at all
  error      a node in ERROR during a stuck upgrade -> exactly one notification
             (BitbucketZduNodeError; the stall alerts fire in Prometheus but are inhibited)
  central    a stuck MIXED upgrade behind the central exporter; once it paged, the exporter is
             killed and started again without its state file (rescheduled) -> no resolve,
             and the page is not sent again
Once the first notification for `error` arrived, the Alertmanager that sent it and one
Prometheus replica are killed (mid-stall): the counts above must hold all the same.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

T0 = time.time()
LOG = []


def say(msg):
    line = "%6.1fs  %s" % (time.time() - T0, msg)
    LOG.append(line)
    print("[e2e-ha %s" % line.replace("  ", "] ", 1), flush=True)


def get_json(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class Prom:
    def __init__(self, spec):
        self.name, pid, self.url = spec.split("=", 2)
        self.pid = int(pid)

    def query(self, q):
        url = "%s/api/v1/query?%s" % (self.url, urllib.parse.urlencode({"query": q}))
        return get_json(url)["data"]["result"]


def notifications(path):
    """[(received, status, alertname, cluster, sender)] from the webhook's JSON lines."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                body = rec.get("body", {})
                for a in body.get("alerts", []):
                    lab = a.get("labels", {})
                    out.append((rec["received"], a.get("status"), lab.get("alertname"),
                                lab.get("cluster", ""), body.get("externalURL", ""),
                                sorted(lab)))
    except FileNotFoundError:
        pass
    return out


def write_pods(path, pods):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for i, (addr, rev) in sorted(pods.items()):
            f.write("- targets: ['%s']\n  labels:\n" % addr)
            f.write("    __meta_kubernetes_namespace: atlassian\n")
            f.write("    __meta_kubernetes_pod_name: bitbucket-%d\n" % i)
            f.write("    __meta_kubernetes_pod_container_name: zdu-exporter\n")
            f.write("    __meta_kubernetes_pod_label_cluster: healthy12\n")
            f.write("    __meta_kubernetes_pod_label_controller_revision_hash: %s\n" % rev)
    os.replace(path + ".tmp", path)


class Run:
    def __init__(self, a):
        self.a = a
        self.proms = [Prom(s) for s in a.prometheus]
        self.ams = [Prom(s) for s in a.alertmanager]
        self.sidecars = []
        for s in a.sidecar:
            pid, addr = s.split("=", 1)
            self.sidecars.append([int(pid), addr])
        self.pods = {i: (addr, "bitbucket-55c4d8f7d9") for i, (_, addr) in enumerate(self.sidecars)}
        self.failures = []
        self.healthy_states = []
        self.max_sidecars_up = 0
        self.replaced = set()       # pods replaced (sidecar killed and started again)
        self.down = {}              # pod -> when its sidecar was killed
        self.orig_version = None
        self.killed = None          # time the Prometheus and Alertmanager replicas were killed
        self.central_restart = None
        self.central_start_times = set()
        self.seen_firing = {}       # (alertname, cluster) -> first time firing in Prometheus
        self.central_not_firing = []

    def spawn(self, cmd):
        log = open(os.path.join(self.a.logs, "spawned-%d.log" % len(LOG)), "w")
        p = subprocess.Popen(shlex.split(cmd), stdout=log, stderr=subprocess.STDOUT)
        with open(self.a.spawned, "a", encoding="utf-8") as f:
            f.write("%d\n" % p.pid)
        return p.pid

    def prom(self):
        for p in self.proms:
            if alive(p.pid):
                return p
        raise SystemExit("no Prometheus replica alive")

    def observe(self):
        p = self.prom()
        states = [r["metric"]["state"] for r in p.query(
            'max by (state) (bitbucket_zdu_cluster_state{cluster="healthy12"}) == 1')]
        if states and (not self.healthy_states or self.healthy_states[-1] != states[0]):
            self.healthy_states.append(states[0])
            say("healthy12 cluster %s" % states[0])
        up = p.query('count(up{cluster="healthy12"} == 1)')
        if up:
            self.max_sidecars_up = max(self.max_sidecars_up, int(float(up[0]["value"][1])))
        for r in p.query('ALERTS{alertstate="firing"}'):
            key = (r["metric"]["alertname"], r["metric"].get("cluster", ""))
            if key not in self.seen_firing:
                self.seen_firing[key] = time.time() - T0
                say("Prometheus %s: %s firing (cluster %s)" % (p.name, key[0], key[1]))
        for r in p.query('process_start_time_seconds{job="bitbucket-zdu-exporter"}'):
            self.central_start_times.add(r["value"][1])
        if self.central_restart is not None:
            held = p.query('ALERTS{alertname="BitbucketZduUpgradeStuckMixed",'
                           'alertstate="firing",cluster="central"}')
            if not held:
                self.central_not_firing.append(time.time() - T0)

    def replace_pods(self, now):
        """As a sidecar upgrade does: each pod's sidecar goes down with its node (OFFLINE, or
        STARTING when the OFFLINE moment was missed; its target leaves service discovery) and
        comes back on the new revision 2 s later at the earliest, once the node is not OFFLINE."""
        try:
            nodes = get_json(self.a.healthy_sim + "/rest/zdu/cluster")["nodes"]
        except (OSError, ValueError, KeyError):
            return
        if self.orig_version is None:  # what most nodes run before the upgrade
            versions = [n.get("version") for n in nodes if n.get("version")]
            self.orig_version = max(set(versions), key=versions.count)
        for n in nodes:
            i = int(n["name"].rsplit("-", 1)[1])
            moved = n["state"] in ("OFFLINE", "STARTING") or (
                n.get("version") not in (None, self.orig_version))  # when both were missed
            if i in self.pods and i not in self.replaced and moved:
                kill(self.sidecars[i][0])
                del self.pods[i]
                write_pods(self.a.file_sd, self.pods)
                self.down[i] = now
                say("pod bitbucket-%d replaced: its sidecar killed, target gone (node %s)"
                    % (i, n["state"]))
            elif i not in self.pods and n["state"] != "OFFLINE" and now - self.down[i] >= 2:
                addr = self.sidecars[i][1]
                self.sidecars[i][0] = self.spawn("%s %s" % (self.a.sidecar_cmd, addr))
                self.pods[i] = (addr, "bitbucket-6d5f7c9b8")
                write_pods(self.a.file_sd, self.pods)
                self.replaced.add(i)
                say("pod bitbucket-%d back on the new revision, its sidecar started" % i)

    def kill_replicas(self, notes):
        firing = [n for n in notes if n[3] == "error" and n[1] == "firing"]
        if self.killed is None and firing and time.time() - firing[0][0] >= 2:
            sender = firing[0][4].rstrip("/")
            am = next((m for m in self.ams if m.url.rstrip("/") == sender), self.ams[0])
            kill(am.pid)
            kill(self.proms[0].pid)
            self.killed = time.time() - T0
            say("mid-stall: killed alertmanager-%s (it sent the first page) and prometheus-%s"
                % (am.name, self.proms[0].name))

    def restart_central(self, notes):
        paged = [n for n in notes if n[3] == "central" and n[1] == "firing"
                 and n[2] == "BitbucketZduUpgradeStuckMixed"]
        if self.central_restart is None and paged:
            kill(self.a.central)
            if os.path.exists(self.a.central_state):
                os.remove(self.a.central_state)
            else:
                self.failures.append("the central exporter had written no state file to lose")
            time.sleep(2)
            self.spawn(self.a.central_cmd)
            self.central_restart = time.time() - T0
            say("central exporter killed, state file deleted, started again (rescheduled)")

    def done(self):
        now = time.time() - T0
        st = self.healthy_states
        healthy_done = "MIXED" in st and "STABLE" in st[st.index("MIXED"):]
        central_done = self.central_restart is not None and now - self.central_restart >= 60
        return healthy_done and central_done and self.killed is not None

    def loop(self):
        while time.time() - T0 < self.a.deadline:
            try:
                self.observe()
            except (OSError, ValueError) as e:
                say("query failed: %s" % e)
            notes = notifications(self.a.webhook_log)
            now = time.time() - T0
            self.replace_pods(now)
            self.kill_replicas(notes)
            self.restart_central(notes)
            if self.done():
                return
            time.sleep(1)
        self.failures.append("deadline reached before every scenario ended")

    def verdict(self):
        notes = notifications(self.a.webhook_log)
        count = {}
        for n in notes:
            count[(n[3], n[1], n[2])] = count.get((n[3], n[1], n[2]), 0) + 1
        print("\nnotifications received (cluster, status, alertname: count):")
        for k in sorted(count):
            print("  %-10s %-9s %-36s %d" % (k[0], k[1], k[2], count[k]))
        senders = sorted({n[4] for n in notes})
        print("senders: %s" % ", ".join(senders))
        f = self.failures
        if any("replica" in n[5] for n in notes):
            f.append("a notification carries the replica label")
        healthy = [k for k in count if k[0] == "healthy12"]
        if healthy:
            f.append("healthy 12-pod upgrade notified: %s" % healthy)
        if self.max_sidecars_up < 12:
            f.append("never saw 12 sidecars up at once (max %d)" % self.max_sidecars_up)
        st = self.healthy_states
        if "MIXED" not in st or "STABLE" not in st[st.index("MIXED"):]:
            f.append("the healthy 12-node upgrade never went from MIXED back to STABLE")
        if len(self.replaced) != len(self.sidecars):
            f.append("only pods %s of %d were replaced during the healthy upgrade"
                     % (sorted(self.replaced), len(self.sidecars)))
        err = {k: v for k, v in count.items() if k[0] == "error"}
        if err != {("error", "firing", "BitbucketZduNodeError"): 1}:
            f.append("node in ERROR: expected exactly 1 firing BitbucketZduNodeError, got %s" % err)
        inhibited = [k for k in self.seen_firing if k[1] == "error"
                     and k[0] in ("BitbucketZduUpgradeStuckMixed", "BitbucketZduUpgradeStalled")]
        if not inhibited:
            f.append("no stall alert fired in Prometheus for the error cluster: inhibition untested")
        cen = {k: v for k, v in count.items() if k[0] == "central"}
        if cen.get(("central", "firing", "BitbucketZduUpgradeStuckMixed")) != 1:
            f.append("central: expected the StuckMixed page exactly once, got %s" % cen)
        resolved = [k for k in cen if k[1] == "resolved"]
        if resolved:
            f.append("central: resolved after the restart: %s" % resolved)
        if any(v > 1 for k, v in cen.items()):
            f.append("central: a notification came twice: %s" % cen)
        if self.central_restart is None:
            f.append("the central exporter was never restarted")
        elif len(self.central_start_times) < 2:
            f.append("the central exporter's restart is not visible in process_start_time_seconds")
        if self.central_not_firing:
            f.append("central StuckMixed not firing in Prometheus after the restart at %s"
                     % self.central_not_firing[:5])
        if self.killed is None:
            f.append("no replica was killed")
        elif not any(n[0] - T0 > self.killed and n[3] == "central" for n in notes):
            f.append("no notification arrived after the replicas were killed")
        for line in f:
            print("FAIL: %s" % line)
        if not f:
            print("PASS: healthy12 0 notifications; error %d (NodeError); central %s, 0 resolved;"
                  " one Prometheus and one Alertmanager killed at %.0fs"
                  % (sum(err.values()), dict((k[2], v) for k, v in cen.items()), self.killed))
        return 1 if f else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", action="append", required=True, help="NAME=PID=URL")
    ap.add_argument("--alertmanager", action="append", required=True, help="NAME=PID=URL")
    ap.add_argument("--webhook-log", required=True)
    ap.add_argument("--file-sd", required=True)
    ap.add_argument("--sidecar", action="append", required=True, help="PID=HOST:PORT")
    ap.add_argument("--sidecar-cmd", required=True, help="command line, listen address appended")
    ap.add_argument("--healthy-sim", required=True, help="URL of the 12-node simulator")
    ap.add_argument("--central", type=int, required=True, help="pid of the central exporter")
    ap.add_argument("--central-state", required=True)
    ap.add_argument("--central-cmd", required=True)
    ap.add_argument("--central-url", required=True)
    ap.add_argument("--spawned", required=True, help="file to append started pids to")
    ap.add_argument("--logs", required=True)
    ap.add_argument("--deadline", type=float, required=True)
    a = ap.parse_args()
    run = Run(a)
    for am in run.ams:
        for _ in range(100):
            peers = get_json(am.url + "/api/v2/status")["cluster"].get("peers") or []
            if len(peers) == 2:
                break
            time.sleep(0.2)
        else:
            raise SystemExit("alertmanager-%s: the cluster never had 2 peers" % am.name)
    say("both Alertmanagers see 2 cluster peers")
    run.loop()
    sys.exit(run.verdict())


if __name__ == "__main__":
    main()
