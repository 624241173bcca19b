#!/usr/bin/env bash
# Validates the Kubernetes manifests under deploy/kubernetes/ (scripts/manifests.py says how),
# then proves the checks bite: broken copies must fail, each with its own message. Also runs
# the central exporter's ConfigMap config through `--config.check`.
# Installs kubernetes-validate (pinned, with its dependencies, from
# scripts/manifests-requirements.txt) into target/tools/ on first use; needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

STEP_PREFIX=manifests
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

KUBE_VERSIONS=(1.29.0 1.37.0)
KV_VERSION="$(sed -n 's/^kubernetes-validate==//p' scripts/manifests-requirements.txt)"
VENV="target/tools/kubernetes-validate-$KV_VERSION"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"

# A venv cannot be moved (its scripts name their interpreter by path): build it in place and
# mark it complete last.
if [ ! -f "$VENV/.complete" ]; then
  step "installing kubernetes-validate $KV_VERSION into $VENV"
  command -v python3 >/dev/null 2>&1 || fail "python3 is needed (apt-get install python3 python3-venv)"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV" || fail "cannot create a Python venv"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/manifests-requirements.txt \
    || fail "cannot install kubernetes-validate $KV_VERSION from PyPI"
  touch "$VENV/.complete"
fi
PATH="$PWD/$VENV/bin:$PATH"
[ "$(kubernetes-validate --version)" = "$KV_VERSION" ] || fail "kubernetes-validate is not $KV_VERSION"
check() { python scripts/manifests.py "$1" "$VERSION" "${KUBE_VERSIONS[@]}"; }

step "deploy/kubernetes/ (kubernetes-validate $KV_VERSION)"
check deploy/kubernetes

step "broken copies fail"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# expect_fail NAME MESSAGE FILE SED-EXPRESSION: a copy with FILE edited must fail naming MESSAGE.
expect_fail() {
  local name="$1" message="$2" file="$3" expr="$4" dir="$work/$1"
  cp -r deploy/kubernetes "$dir"
  sed -i "$expr" "$dir/$file"
  cmp -s "deploy/kubernetes/$file" "$dir/$file" && fail "$name: the edit changed nothing"
  if check "$dir" >"$dir.out" 2>&1; then
    cat "$dir.out"; fail "$name: the broken copy passed"
  fi
  grep -qF -- "$message" "$dir.out" || { cat "$dir.out"; fail "$name: failed without '$message'"; }
  echo "ok: $name"
}
expect_fail unknown-field "Additional properties are not allowed" helm-values-sidecar.yaml \
  's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: true\n      readonlyRootFilesystem: true/'
expect_fail privilege-escalation "allowPrivilegeEscalation is not false" central-exporter.yaml \
  's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/'
expect_fail root-uid "is not a numeric non-root UID" helm-values-sidecar.yaml \
  's/runAsUser: 65532/runAsUser: 0/'
expect_fail podmonitor-port "is no container port of the selected pods" podmonitor.yaml \
  's/port: zdu-metrics/port: metrics/'
expect_fail servicemonitor-selector "matches no Service here" servicemonitor-central.yaml \
  's/app.kubernetes.io\/component: central/app.kubernetes.io\/component: sidecar/'
expect_fail networkpolicy-open "admits more than Prometheus pods" central-exporter.yaml \
  '/matchLabels: {app.kubernetes.io\/name: prometheus}/d'
expect_fail missing-volume "which the pod does not have" helm-values-sidecar.yaml \
  's/name: local-home, mountPath/name: local-home2, mountPath/'
expect_fail image-tag "is not tagged with the crate version" central-exporter.yaml \
  "s/bitbucket-zdu-exporter:$VERSION/bitbucket-zdu-exporter:latest/"
cp -r deploy/kubernetes "$work/rule"
cat >"$work/rule/prometheusrule.yaml" <<'EOF'
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: broken}
spec:
  groups:
    - name: g
      rules:
        - alert: NoExpr
EOF
if check "$work/rule" >"$work/rule.out" 2>&1 || ! grep -qF "expr is missing" "$work/rule.out"; then
  cat "$work/rule.out"; fail "a PrometheusRule without expr passed"
fi
echo "ok: prometheusrule-expr"
# And a real one passes: the alert rules wrapped the way the operator takes them.
if [ ! -f deploy/kubernetes/prometheusrule.yaml ]; then
  cp -r deploy/kubernetes "$work/real-rule"
  python - alerts/bitbucket-zdu-alerts.yaml "$work/real-rule/prometheusrule.yaml" <<'PY'
import sys, yaml
groups = yaml.safe_load(open(sys.argv[1]))["groups"]
yaml.safe_dump({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "bitbucket-zdu", "namespace": "monitoring"},
                "spec": {"groups": groups}}, open(sys.argv[2], "w"))
PY
  check "$work/real-rule" >"$work/real-rule.out" 2>&1 || { cat "$work/real-rule.out"; fail "the alert rules as a PrometheusRule failed"; }
  grep -q "PrometheusRule" "$work/real-rule.out" || fail "the PrometheusRule was not checked"
  echo "ok: the alert rules as a PrometheusRule pass (with promtool check rules)"
fi

step "the central exporter's config.yml passes --config.check"
cargo build --quiet --bin bitbucket-zdu-exporter
python - "$work/config" <<'PY'
import pathlib, sys, yaml
out = pathlib.Path(sys.argv[1])
(out / "secrets").mkdir(parents=True)
for doc in yaml.safe_load_all(open("deploy/kubernetes/central-exporter.yaml")):
    if doc and doc.get("kind") == "ConfigMap":
        text = doc["data"]["config.yml"]
for path in sorted({line.split(":", 1)[1].strip() for line in text.splitlines() if "password_file:" in line}):
    name = pathlib.Path(path).name
    (out / "secrets" / name).write_text("not-the-password\n")
    text = text.replace(path, str(out / "secrets" / name))
(out / "config.yml").write_text(text)
PY
target/debug/bitbucket-zdu-exporter --config.check --config.file "$work/config/config.yml"
step "manifests passed"
