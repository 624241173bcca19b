#!/usr/bin/env bash
# The whole test suite, as the README's second command and CI (.ci/run) run it.
# Installs what it needs (Debian's prometheus for promtool, alertmanager, jsonnet, wrk and
# the shell linter) when
# missing; scripts/manifests.sh, systemd.sh and image.sh install their own tools.
# Usage: scripts/test.sh            everything
#        SKIP_E2E=1 scripts/test.sh without the real-Prometheus end-to-end run
#        SKIP_IMAGE=1 scripts/test.sh without the container image (says so when skipping)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ] || need_apt+=(prometheus-alertmanager)
command -v jsonnet >/dev/null 2>&1 && command -v jsonnetfmt >/dev/null 2>&1 || need_apt+=(jsonnet)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_install "${need_apt[@]}"
  # The Debian packages start their services; the tests start their own on other ports.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    as_root systemctl stop "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true
  done
fi
for tool in promtool jsonnet jsonnetfmt wrk shellcheck; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing after installing the Debian packages"
done

step "shellcheck: every shell script (scripts/, tests/browser/, tests/e2e/)"
shellcheck -x scripts/*.sh tests/browser/*.sh tests/e2e/*.sh alerts/*.sh .ci/run

step "jsonnetfmt --test: the alerting mixin is formatted"
jsonnetfmt --test alerts/*.libsonnet alerts/*.jsonnet alerts/dashboards/*.libsonnet tests/e2e/*.jsonnet

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "without the simulator feature: cargo build and clippy --no-default-features"
cargo build --no-default-features --quiet
cargo clippy --no-default-features --quiet -- -D warnings

step "rust-version: no dependency in Cargo.lock needs a newer Rust than Cargo.toml declares"
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
meta = json.load(sys.stdin)
ver = lambda s: tuple(int(x) for x in (s.split(".") + ["0", "0"])[:3])
root = next(p for p in meta["packages"] if p["id"] in meta["workspace_members"])
declared = root["rust_version"]
over = sorted(
    (ver(p["rust_version"]), p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p.get("rust_version") and p["id"] not in meta["workspace_members"]
    and ver(p["rust_version"]) > ver(declared)
)
for _, name, version, rv in over:
    print(f"FAIL: {name} {version} needs Rust {rv}, Cargo.toml declares rust-version = {declared}")
sys.exit(1 if over else 0)
'

step "one crypto provider: ring only, no aws-lc-rs or OpenSSL in the dependency graph"
for crate in aws-lc-rs aws-lc-sys openssl-sys native-tls; do
  if cargo tree -q -i "$crate" >/dev/null 2>&1; then
    echo "FAIL: $crate is in the dependency graph:"; cargo tree -i "$crate"; exit 1
  fi
done
cargo tree -q -i ring >/dev/null

step "cargo doc --no-deps with warnings as errors"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "fuzz crate compiles (cargo check in fuzz/, stable toolchain, shared target dir)"
# cargo-fuzz needs nightly -Z flags to *run* the targets (scripts/fuzz.sh); type-checking
# them, libfuzzer-sys included, works on stable.
(cd fuzz && CARGO_TARGET_DIR=../target cargo check --locked --bins --quiet)

step "cargo test (unit, integration, golden files, metric contract, router, faults, web config, fuzz regressions)"
cargo test --all-targets --quiet

# The debug build that cargo test just made: a release build would double CI's build time, and
# the smoke run checks only that the benchmark runs and prints its tables (docs/performance.md).
step "benchmark smoke run (scripts/bench.sh --smoke, debug build)"
BENCH_SMOKE=1 BENCH_PROFILE=debug bash scripts/bench.sh

step "alert rules, rule unit tests, dashboard lint"
bash alerts/test.sh

step "Kubernetes manifests (kubernetes-validate, operator kinds, cross-references)"
bash scripts/manifests.sh

step "systemd unit (systemd-analyze verify and security)"
bash scripts/systemd.sh

if [ -n "${SKIP_IMAGE:-}" ]; then
  step "container image: SKIPPED because SKIP_IMAGE is set"
else
  step "container image (static binary, podman build, contents, empty-root run)"
  bash scripts/image.sh test
  step "cargo install --path . puts a binary whose --version names this revision"
  install_root="$(mktemp -d)"
  # Same target and flags as the image's build, so this reuses it instead of building again.
  RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
    cargo install --quiet --locked --path . --root "$install_root" --target-dir target \
    --target x86_64-unknown-linux-gnu
  installed_version="$("$install_root/bin/bitbucket-zdu-exporter" --version)"
  rm -rf "$install_root"
  echo "$installed_version"
  case "$installed_version" in
    *"revision $(git rev-parse --short=12 HEAD),"*) ;;
    *) echo "FAIL: the installed binary's --version does not name revision $(git rev-parse --short=12 HEAD)"; exit 1 ;;
  esac
fi

for extra in tests/browser/landing.sh tests/browser/upgrade.sh tests/e2e/run.sh; do
  if [ -f "$extra" ] && [ -z "${SKIP_E2E:-}" ]; then
    step "end to end: $extra"
    bash "$extra"
  fi
done

step "all tests passed"
