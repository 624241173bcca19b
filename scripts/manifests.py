"""Validates every *.yaml under a directory (deploy/kubernetes/) by its kind.

- Core kinds go to kubernetes-validate --strict against each Kubernetes version given.
- A file without `kind` must be Helm values for Atlassian's Bitbucket chart with
  `additionalContainers`: each container is placed into a Pod the way the chart renders it
  (next to the Bitbucket container, with the chart's `local-home` volume, `volumes.additional`
  and the chart's pod securityContext) and that Pod is validated like a core kind.
- Prometheus Operator kinds (monitoring.coreos.com/v1 PodMonitor, ServiceMonitor,
  PrometheusRule) are checked for the fields the operator requires; a PrometheusRule's spec
  also goes through `promtool check rules`.
- Cross-references: Service and NetworkPolicy selectors match a workload's pod labels,
  named ports and volumes exist, monitors select something that exists and name its ports,
  the exporter's image tag is the crate version, and every exporter container has the
  restrictive securityContext.

Usage: manifests.py DIR CRATE_VERSION KUBERNETES_VERSION...
Prints one line per check group and exits 1 with every problem listed if any check fails.
"""

import copy
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

OPERATOR_GROUP = "monitoring.coreos.com/v1"
EXPORTER_IMAGE = "bitbucket-zdu-exporter"
# How the chart (2.0.9) labels its pods: common.labels.selectorLabels.
CHART_POD_LABELS = {"app.kubernetes.io/name": "bitbucket", "app.kubernetes.io/instance": "bitbucket"}

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def matches(selector, labels):
    """matchLabels semantics (matchExpressions are not used in these manifests)."""
    if not isinstance(selector, dict) or not selector:
        return False
    if set(selector) - {"matchLabels"}:
        return False
    want = selector.get("matchLabels") or {}
    return bool(want) and all(labels.get(k) == v for k, v in want.items())


def chart_pod(values, where):
    """The Pod the Bitbucket chart renders from these values, reduced to what matters here."""
    containers = values.get("additionalContainers")
    if not isinstance(containers, list) or not containers:
        problem(where, "no `kind` and no `additionalContainers`: neither a manifest nor sidecar values")
        return None
    unknown = set(values) - {"additionalContainers", "volumes", "bitbucket"}
    if unknown:
        problem(where, f"top-level keys not checked against the chart: {sorted(unknown)}")
    volumes = values.get("volumes") or {}
    if set(volumes) - {"additional"}:
        problem(where, f"volumes keys not checked against the chart: {sorted(set(volumes) - {'additional'})}")
    bitbucket = values.get("bitbucket") or {}
    if set(bitbucket) - {"sysadminCredentials"}:
        problem(where, f"bitbucket keys not checked against the chart: {sorted(set(bitbucket) - {'sysadminCredentials'})}")
    creds = bitbucket.get("sysadminCredentials") or {}
    if set(creds) - {"secretName", "usernameSecretKey", "passwordSecretKey"}:
        problem(where, "unknown bitbucket.sysadminCredentials keys")
    secret = creds.get("secretName")
    user_key = creds.get("usernameSecretKey", "username")
    password_key = creds.get("passwordSecretKey", "password")
    for c in containers:
        for env in c.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if ref and (ref.get("name") != secret or ref.get("key") not in (user_key, password_key)):
                problem(where, f"env {env.get('name')} reads {ref}, not the chart's sysadmin Secret {secret!r} keys {user_key!r}/{password_key!r}")
    for v in volumes.get("additional") or []:
        s = v.get("secret")
        if s and s.get("secretName") == secret:
            for item in s.get("items") or []:
                if item.get("key") not in (user_key, password_key):
                    problem(where, f"volume {v.get('name')} reads key {item.get('key')!r} of the sysadmin Secret")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bitbucket-0", "labels": dict(CHART_POD_LABELS)},
        "spec": {
            "securityContext": {"fsGroup": 2003, "fsGroupChangePolicy": "OnRootMismatch"},
            "containers": [
                {
                    "name": "bitbucket",
                    "image": "atlassian/bitbucket:9.4.16",
                    "ports": [{"name": "http", "containerPort": 7990, "protocol": "TCP"}],
                    "volumeMounts": [{"name": "local-home", "mountPath": "/var/atlassian/application-data/bitbucket"}],
                }
            ]
            + copy.deepcopy(containers),
            "volumes": [{"name": "local-home", "emptyDir": {}}] + copy.deepcopy(volumes.get("additional") or []),
        },
    }


def pod_spec(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec") or {}, (doc.get("metadata") or {}).get("labels") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        template = (doc.get("spec") or {}).get("template") or {}
        return template.get("spec") or {}, (template.get("metadata") or {}).get("labels") or {}
    return None, None


def check_workload(doc, where, version):
    spec, labels = pod_spec(doc)
    if spec is None:
        return
    kind = doc["kind"]
    if kind != "Pod":
        selector = (doc.get("spec") or {}).get("selector")
        if not matches(selector, labels):
            problem(where, f"{kind} selector {selector} does not match its pod labels {labels}")
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    pod_sc = spec.get("securityContext") or {}
    for c in spec.get("containers") or []:
        cw = f"{where} container {c.get('name')}"
        ports = {p.get("name") for p in c.get("ports") or []}
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problem(cw, f"mounts volume {m.get('name')!r}, which the pod does not have")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                problem(cw, f"{probe} names port {port!r}, which the container does not have")
        image = c.get("image", "")
        if EXPORTER_IMAGE not in image:
            continue
        if not image.endswith(":" + version):
            problem(cw, f"image {image} is not tagged with the crate version {version}")
        sc = c.get("securityContext") or {}

        def field(name):
            return sc.get(name, pod_sc.get(name))

        if field("runAsNonRoot") is not True:
            problem(cw, "runAsNonRoot is not true")
        uid = field("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            problem(cw, f"runAsUser {uid!r} is not a numeric non-root UID")
        if sc.get("readOnlyRootFilesystem") is not True:
            problem(cw, "readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(cw, "allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problem(cw, "privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problem(cw, "capabilities.drop lacks ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problem(cw, "adds capabilities")
        if ((field("seccompProfile") or {}).get("type")) != "RuntimeDefault":
            problem(cw, "seccompProfile is not RuntimeDefault")


def check_operator(doc, where):
    kind = doc.get("kind")
    if doc.get("apiVersion") != OPERATOR_GROUP:
        problem(where, f"{kind}: apiVersion {doc.get('apiVersion')!r}, expected {OPERATOR_GROUP}")
    if not (doc.get("metadata") or {}).get("name"):
        problem(where, f"{kind}: metadata.name is missing")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        problem(where, f"{kind}: spec is missing")
        return
    if kind in ("PodMonitor", "ServiceMonitor"):
        if not isinstance(spec.get("selector"), dict) or not spec["selector"]:
            problem(where, f"{kind}: spec.selector is required")
        key = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
        endpoints = spec.get(key)
        if not isinstance(endpoints, list) or not endpoints:
            problem(where, f"{kind}: spec.{key} needs at least one endpoint")
            return
        allowed = {"port", "portNumber", "targetPort", "path", "scheme", "params", "interval",
                   "scrapeTimeout", "honorLabels", "honorTimestamps", "relabelings",
                   "metricRelabelings", "basicAuth", "authorization", "tlsConfig",
                   "bearerTokenSecret", "followRedirects", "enableHttp2", "filterRunning",
                   "proxyUrl", "oauth2", "trackTimestampsStaleness"}
        for i, ep in enumerate(endpoints):
            ew = f"{where} {kind} spec.{key}[{i}]"
            if not isinstance(ep, dict):
                problem(ew, "not a mapping")
                continue
            if set(ep) - allowed:
                problem(ew, f"unknown fields {sorted(set(ep) - allowed)}")
            if not any(ep.get(k) for k in ("port", "portNumber", "targetPort")):
                problem(ew, "names no port")
            params = ep.get("params") or {}
            if not isinstance(params, dict) or any(not isinstance(v, list) for v in params.values()):
                problem(ew, "params must map names to lists of strings")
            if ep.get("path", "/metrics") == "/probe" and not params.get("target"):
                problem(ew, "/probe without a target parameter")
            for r in ep.get("relabelings") or []:
                if r.get("action", "replace") == "replace" and not r.get("targetLabel"):
                    problem(ew, f"relabeling {r} has no targetLabel")
    elif kind == "PrometheusRule":
        groups = spec.get("groups")
        if not isinstance(groups, list) or not groups:
            problem(where, "PrometheusRule: spec.groups needs at least one group")
            return
        for i, g in enumerate(groups):
            if not isinstance(g, dict) or not g.get("name"):
                problem(where, f"PrometheusRule: spec.groups[{i}].name is missing")
                continue
            rules = g.get("rules")
            if not isinstance(rules, list) or not rules:
                problem(where, f"PrometheusRule: group {g['name']} has no rules")
                continue
            for j, r in enumerate(rules):
                rw = f"{where} PrometheusRule group {g['name']} rules[{j}]"
                if bool(r.get("alert")) == bool(r.get("record")):
                    problem(rw, "needs exactly one of alert or record")
                if not r.get("expr"):
                    problem(rw, "expr is missing")
    else:
        problem(where, f"unknown Prometheus Operator kind {kind!r}")


def promtool_rules(doc, where, tmp):
    promtool = shutil.which("promtool")
    if not promtool:
        problem(where, "promtool is needed to check a PrometheusRule (Debian package prometheus)")
        return
    path = pathlib.Path(tmp) / f"rules-{doc['metadata'].get('name', 'x')}.yaml"
    path.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        problem(where, f"promtool check rules: {out.stdout}{out.stderr}")


def main():
    root = pathlib.Path(sys.argv[1])
    version = sys.argv[2]
    kube_versions = sys.argv[3:]
    if not kube_versions:
        sys.exit("usage: manifests.py DIR CRATE_VERSION KUBERNETES_VERSION...")
    files = sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.yml"))
    if not files:
        sys.exit(f"FAIL: no *.yaml under {root}")
    core, operator, workloads = [], [], []
    for f in files:
        try:
            docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        except yaml.YAMLError as e:
            problem(str(f), f"not YAML: {e}")
            continue
        for n, doc in enumerate(docs):
            where = f"{f}" + (f" (document {n + 1})" if len(docs) > 1 else "")
            if not isinstance(doc, dict):
                problem(where, "not a mapping")
                continue
            if "kind" not in doc:
                pod = chart_pod(doc, where)
                if pod is not None:
                    core.append((f"{where} [sidecar in the chart's pod]", pod))
                continue
            if not doc.get("apiVersion"):
                problem(where, "apiVersion is missing")
                continue
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                operator.append((where, doc))
            else:
                core.append((where, doc))
    for where, doc in core:
        check_workload(doc, where, version)
    workloads = [(w, d) for w, d in core if pod_spec(d)[0] is not None]
    services = [(w, d) for w, d in core if d.get("kind") == "Service"]

    def pods_matching(selector, namespace):
        return [(w, d) for w, d in workloads
                if (d.get("metadata") or {}).get("namespace") in (None, namespace)
                and matches({"matchLabels": selector} if "matchLabels" not in selector else selector,
                            pod_spec(d)[1])]

    for where, svc in services:
        ns = (svc.get("metadata") or {}).get("namespace")
        selector = (svc.get("spec") or {}).get("selector") or {}
        targets = pods_matching({"matchLabels": selector}, ns)
        if not targets:
            problem(where, f"Service selector {selector} matches no workload here")
        for p in (svc.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort")
            if isinstance(tp, str):
                for w, d in targets:
                    names = {q.get("name") for c in pod_spec(d)[0].get("containers") or [] for q in c.get("ports") or []}
                    if tp not in names:
                        problem(where, f"targetPort {tp!r} is no container port of {w}")
    for where, np in [(w, d) for w, d in core if d.get("kind") == "NetworkPolicy"]:
        spec = np.get("spec") or {}
        ns = (np.get("metadata") or {}).get("namespace")
        targets = pods_matching(spec.get("podSelector") or {}, ns)
        if not targets:
            problem(where, "NetworkPolicy podSelector matches no workload here")
        if "Ingress" not in (spec.get("policyTypes") or []):
            problem(where, "NetworkPolicy does not restrict Ingress")
        for rule in spec.get("ingress") or []:
            peers = rule.get("from") or []
            if not peers:
                problem(where, "an ingress rule admits every source")
            for peer in peers:
                if "ipBlock" in peer or not peer.get("podSelector"):
                    problem(where, f"ingress peer {peer} admits more than Prometheus pods")
            for port in rule.get("ports") or []:
                if isinstance(port.get("port"), str):
                    for w, d in targets:
                        names = {q.get("name") for c in pod_spec(d)[0].get("containers") or [] for q in c.get("ports") or []}
                        if port["port"] not in names:
                            problem(where, f"ingress port {port['port']!r} is no container port of {w}")
    with tempfile.TemporaryDirectory() as tmp:
        for where, doc in operator:
            check_operator(doc, where)
            kind = doc.get("kind")
            spec = doc.get("spec") or {}
            ns = (doc.get("metadata") or {}).get("namespace")
            if kind == "PodMonitor" and isinstance(spec.get("selector"), dict):
                pods = [d for w, d in workloads if matches(spec["selector"], pod_spec(d)[1])]
                if not pods:
                    problem(where, f"PodMonitor selector {spec['selector']} matches no pod here")
                names = {q.get("name") for d in pods for c in pod_spec(d)[0].get("containers") or [] for q in c.get("ports") or []}
                for ep in spec.get("podMetricsEndpoints") or []:
                    if ep.get("port") and ep["port"] not in names:
                        problem(where, f"PodMonitor port {ep['port']!r} is no container port of the selected pods")
            if kind == "ServiceMonitor" and isinstance(spec.get("selector"), dict):
                svcs = [d for w, d in services if (d.get("metadata") or {}).get("namespace") in (None, ns)
                        and matches(spec["selector"], (d.get("metadata") or {}).get("labels") or {})]
                if not svcs:
                    problem(where, f"ServiceMonitor selector {spec['selector']} matches no Service here")
                names = {p.get("name") for d in svcs for p in (d.get("spec") or {}).get("ports") or []}
                for ep in spec.get("endpoints") or []:
                    if ep.get("port") and ep["port"] not in names:
                        problem(where, f"ServiceMonitor port {ep['port']!r} is no port of the selected Service")
            if kind == "PrometheusRule" and not problems:
                promtool_rules(doc, where, tmp)
        kinds = sorted({d.get("kind") for _, d in operator})
        print(f"Prometheus Operator resources checked: {len(operator)} ({', '.join(kinds) or 'none'})")
        if "PrometheusRule" not in kinds:
            print(f"NOTE: no PrometheusRule under {root} yet (rendered from alerts/ by the alert rules' render step)")

        kv = shutil.which("kubernetes-validate")
        if not kv:
            problem("kubernetes-validate", "not on PATH")
        else:
            for i, (where, doc) in enumerate(core):
                path = pathlib.Path(tmp) / f"core-{i}.yaml"
                path.write_text(yaml.safe_dump(doc))
                for kver in kube_versions:
                    out = subprocess.run([kv, "--strict", "--quiet", "-k", kver, str(path)],
                                         capture_output=True, text=True)
                    text = (out.stdout + out.stderr).strip()
                    if out.returncode != 0 or "WARN" in text or "ERROR" in text:
                        problem(where, f"kubernetes-validate --strict -k {kver}: {text}")
            kinds = sorted({d.get("kind") for _, d in core})
            print(f"core resources validated (kubernetes-validate --strict, Kubernetes {', '.join(kube_versions)}): "
                  f"{len(core)} ({', '.join(kinds)})")
    if problems:
        print("FAIL: manifests:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
