#!/usr/bin/env bash
# The container image: a static binary and the CA bundle in a FROM-scratch image (Containerfile).
# Installs what it needs on Debian (podman, ca-certificates, libc6-dev for the static glibc,
# binutils) when missing.
#
# Usage: scripts/image.sh stage   static release binary + CA bundle into target/image/rootfs/
#        scripts/image.sh build   stage, then `podman build` as $IMAGE
#        scripts/image.sh test    build, then check the image (file list, owners, modes, config,
#                                 labels, size) and run its binary in an empty root with chroot
#                                 against the built-in simulator until bitbucket_zdu_up is 1
# Env:   IMAGE   tag to build (default localhost/bitbucket-zdu-exporter:VERSION)
#        IMAGE_SOURCE  org.opencontainers.image.source (default: `repository` in Cargo.toml)
#
# Static binary: the gnu target with +crt-static (glibc's static libraries come with
# libc6-dev). getrandom's default Linux backend finds glibc's getrandom() with dlsym(), which
# a static binary cannot do, and then falls back to opening /dev/urandom; the linux_getrandom
# backend calls the system call directly, so the binary needs no /dev at all.
set -euo pipefail
cd "$(dirname "$0")/.."

STEP_PREFIX=image
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

mode="${1:-test}"
case "$mode" in stage | build | test) ;; *) fail "unknown mode '$mode' (stage, build or test)" ;; esac

TARGET=x86_64-unknown-linux-gnu
[ "$(uname -m)" = x86_64 ] || fail "the static build is set up for x86_64, this is $(uname -m)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
REVISION="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
SOURCE="${IMAGE_SOURCE:-$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -n1)}"
SOURCE="${SOURCE:-unknown}"
CREATED="$(date -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%dT%H:%M:%SZ)"
IMAGE="${IMAGE:-localhost/bitbucket-zdu-exporter:$VERSION}"
ROOTFS=target/image/rootfs
BIN="target/$TARGET/release/bitbucket-zdu-exporter"

# --- tools -----------------------------------------------------------------------------------
need_apt=()
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need_apt+=(libc6-dev)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v readelf >/dev/null 2>&1 && command -v strip >/dev/null 2>&1 || need_apt+=(binutils)
if [ "$mode" != stage ]; then
  command -v podman >/dev/null 2>&1 || need_apt+=(podman)
fi
if [ "$mode" = test ]; then
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
fi
apt_install "${need_apt[@]}"
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || fail "glibc's static library is missing after installing libc6-dev"
[ -f /etc/ssl/certs/ca-certificates.crt ] || fail "/etc/ssl/certs/ca-certificates.crt is missing after installing ca-certificates"

# --- stage -----------------------------------------------------------------------------------
step "static release binary ($TARGET, +crt-static, getrandom linux_getrandom backend)"
RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build --release --locked --quiet --target "$TARGET" --bin bitbucket-zdu-exporter
if readelf -lW "$BIN" | grep -q 'INTERP'; then
  fail "$BIN has a program interpreter: it is not static"
fi
if readelf -dW "$BIN" | grep -q '(NEEDED)'; then
  fail "$BIN needs shared libraries: $(readelf -dW "$BIN" | grep '(NEEDED)' | tr -s ' ')"
fi

rm -rf target/image
mkdir -p "$ROOTFS/etc/ssl/certs"
install -m 0555 "$BIN" "$ROOTFS/bitbucket-zdu-exporter"
strip --strip-debug "$ROOTFS/bitbucket-zdu-exporter"
install -m 0444 /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$ROOTFS" "$ROOTFS/etc" "$ROOTFS/etc/ssl" "$ROOTFS/etc/ssl/certs"
"$ROOTFS/bitbucket-zdu-exporter" --version | grep -q "revision $REVISION" \
  || fail "the staged binary's --version does not name revision $REVISION"
echo "staged $ROOTFS: $(du -sb "$ROOTFS" | cut -f1) bytes"
[ "$mode" = stage ] && exit 0

# --- build -----------------------------------------------------------------------------------
step "podman build -t $IMAGE ."
podman build --quiet --timestamp "$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
  --build-arg SOURCE="$SOURCE" --build-arg CREATED="$CREATED" \
  -f Containerfile -t "$IMAGE" . >/dev/null
[ "$mode" = build ] && { echo "built $IMAGE"; exit 0; }

# --- test: contents and configuration ---------------------------------------------------------
step "image contents and configuration"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

podman save --quiet --format oci-archive -o "$work/image.tar" "$IMAGE"
podman image inspect "$IMAGE" >"$work/inspect.json"
mkdir -m 0755 "$work/root"
python3 - "$work/image.tar" "$work/inspect.json" "$work/root" "$VERSION" "$REVISION" <<'PY'
import json, sys, tarfile, io, os

archive, inspect_path, root, version, revision = sys.argv[1:]
# Exactly this, and nothing else: (path, type, mode, uid, gid).
expected = {
    "bitbucket-zdu-exporter": ("file", 0o555, 0, 0),
    "etc": ("dir", 0o755, 0, 0),
    "etc/ssl": ("dir", 0o755, 0, 0),
    "etc/ssl/certs": ("dir", 0o755, 0, 0),
    "etc/ssl/certs/ca-certificates.crt": ("file", 0o444, 0, 0),
}
errors = []
with tarfile.open(archive) as oci:
    def blob(digest):
        return oci.extractfile("blobs/" + digest.replace(":", "/")).read()
    index = json.loads(oci.extractfile("index.json").read())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    layers = manifest["layers"]
    if len(layers) != 1:
        errors.append(f"{len(layers)} layers, expected 1")
    found = {}
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as t:
            for m in t.getmembers():
                name = m.name.lstrip("./").rstrip("/")
                if not name:
                    continue
                kind = "dir" if m.isdir() else "file" if m.isfile() else "other"
                found[name] = (kind, m.mode & 0o7777, m.uid, m.gid)
                if m.isfile() or m.isdir():
                    t.extract(m, root, set_attrs=False, filter="fully_trusted")
                    os.chmod(os.path.join(root, name), m.mode & 0o7777)
for name in sorted(set(found) | set(expected)):
    want, got = expected.get(name), found.get(name)
    if want != got:
        errors.append(f"{name}: expected {want}, found {got}")
print("files:")
for name in sorted(found):
    kind, mode, uid, gid = found[name]
    size = os.path.getsize(os.path.join(root, name)) if kind == "file" else 0
    print(f"  {kind:4} {mode:04o} {uid}:{gid} {size:>10} /{name}")

info = json.load(open(inspect_path))[0]
config = info["Config"]
checks = {
    "user": (config.get("User"), "65532:65532"),
    "entrypoint": (config.get("Entrypoint"), ["/bitbucket-zdu-exporter"]),
    "cmd": (config.get("Cmd"), None),
    "exposed ports": (sorted(config.get("ExposedPorts", {})), ["9879/tcp"]),
    "env": ([e for e in config.get("Env") or [] if not e.startswith("PATH=")], []),
}
labels = config.get("Labels") or {}
for key, want in {
    "org.opencontainers.image.title": "bitbucket-zdu-exporter",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.revision": revision,
}.items():
    checks[f"label {key}"] = (labels.get(key), want)
for key in ("org.opencontainers.image.source", "org.opencontainers.image.created"):
    checks[f"label {key}"] = (bool(labels.get(key)), True)
for what, (got, want) in checks.items():
    if got != want:
        errors.append(f"{what}: expected {want!r}, found {got!r}")
print(f"size: {info['Size']} bytes ({info['Size'] / 1048576:.1f} MiB)")
print("labels:")
for k, v in sorted(labels.items()):
    print(f"  {k}={v}")
if errors:
    print("FAIL: image:\n  " + "\n  ".join(errors), file=sys.stderr)
    sys.exit(1)
PY
cmp -s "$work/root/bitbucket-zdu-exporter" "$ROOTFS/bitbucket-zdu-exporter" \
  || fail "the image's binary differs from the staged one"

# --- test: the image's own binary in an empty root ----------------------------------------------
step "the image's files in an empty root (chroot, uid 65532): demo serves /metrics with up 1"
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: the empty-root run needs root for chroot (uid $(id -u)); run as root in CI"
  exit 0
fi
if ! chroot / /bin/true 2>"$work/chroot.err"; then
  echo "SKIPPED: this machine forbids chroot: $(cat "$work/chroot.err")"
  exit 0
fi

# wait_up PORT LOG: polls /metrics until the sample bitbucket_zdu_up is 1 (30 s at most).
wait_up() {
  local port="$1" log="$2" body
  for _ in $(seq 1 60); do
    body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null || true)"
    if printf '%s\n' "$body" | grep -Eq '^bitbucket_zdu_up(\{[^}]*\})? 1(\.0)?$'; then
      printf '%s\n' "$body" | grep -E '^bitbucket_zdu_(up|cluster_state)\b' | head -n 4
      return 0
    fi
    sleep 0.5
  done
  echo "last /metrics:"; printf '%s\n' "$body" | grep -E '^bitbucket_zdu_' | head -n 20
  echo "log:"; cat "$log"
  return 1
}

port="$(free_port)"
chroot --userspec=65532:65532 "$work/root" /bitbucket-zdu-exporter demo \
  --web.listen-address="127.0.0.1:$port" --speed 20 --poll.interval 1s >"$work/demo.log" 2>&1 &
pids+=($!)
wait_up "$port" "$work/demo.log" || fail "demo in the empty root never reached bitbucket_zdu_up 1"

# A sidecar polls http://localhost:7990: the runtime mounts /etc/hosts into the container, and
# the static binary must resolve through it (glibc's built-in files backend, no NSS modules).
step "the exporter in the empty root with only /etc/hosts added resolves localhost to the simulator"
sim_port="$(free_port)"
port="$(free_port)"
"$ROOTFS/bitbucket-zdu-exporter" simulate --web.listen-address="127.0.0.1:$sim_port" --scenario stable \
  >"$work/sim.log" 2>&1 &
pids+=($!)
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$work/root/etc/hosts"
chroot --userspec=65532:65532 "$work/root" /bitbucket-zdu-exporter \
  --bitbucket.url="http://localhost:$sim_port" --web.listen-address="127.0.0.1:$port" \
  --poll.interval=1s --bitbucket.timeout=1s >"$work/exporter.log" 2>&1 &
pids+=($!)
wait_up "$port" "$work/exporter.log" || fail "the exporter in the empty root never reached bitbucket_zdu_up 1 through localhost"
if grep -q 'panicked' "$work/demo.log" "$work/exporter.log"; then
  fail "a panic in the empty-root run: $(grep -h -A1 panicked "$work/demo.log" "$work/exporter.log")"
fi
step "image $IMAGE passed"
