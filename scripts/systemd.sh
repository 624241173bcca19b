#!/usr/bin/env bash
# Checks deploy/systemd/bitbucket-zdu-exporter.service: the directives the deployment relies on
# are there, `systemd-analyze verify` passes without a single complaint (with the binary this
# tree builds in place of /usr/local/bin/…, and its generated man page on MANPATH for
# Documentation=man:…), and `systemd-analyze security --offline` scores it at most
# MAX_EXPOSURE. Installs Debian's systemd (for systemd-analyze) and man-db when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

STEP_PREFIX=systemd
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

UNIT=deploy/systemd/bitbucket-zdu-exporter.service
# systemd-analyze's scale is 0.0 (locked down) to 10.0; --threshold takes tenths.
MAX_EXPOSURE=1.1

need_commands systemd-analyze=systemd man=man-db

step "required directives"
for directive in 'DynamicUser=yes' 'StateDirectory=bitbucket-zdu-exporter' \
  'LoadCredential=password:' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
  'NoNewPrivileges=yes' 'RestrictAddressFamilies=' 'SystemCallFilter=@system-service' \
  'CapabilityBoundingSet=' 'ExecReload=' ; do
  grep -q "^$directive" "$UNIT" || fail "$UNIT lacks $directive"
done
grep -q -- '--bitbucket.password-file=%d/password' "$UNIT" || fail "the password is not read from the credential"
grep -q -- '--state.file=%S/bitbucket-zdu-exporter/' "$UNIT" || fail "the state file is not in the StateDirectory"
echo "ok"

cargo build --quiet --bin bitbucket-zdu-exporter
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/man/man1"
target/debug/bitbucket-zdu-exporter man >"$work/man/man1/bitbucket-zdu-exporter.1"
sed "s|/usr/local/bin/bitbucket-zdu-exporter|$PWD/target/debug/bitbucket-zdu-exporter|" "$UNIT" \
  >"$work/bitbucket-zdu-exporter.service"

# verify_quiet FILE: systemd-analyze verify must succeed and say nothing (it only warns, and
# exits 0, about a value it cannot parse).
verify_quiet() {
  MANPATH="$work/man" systemd-analyze verify "$1" >"$work/verify.out" 2>&1 && [ ! -s "$work/verify.out" ]
}
step "systemd-analyze verify ($(systemd-analyze --version | head -n1))"
verify_quiet "$work/bitbucket-zdu-exporter.service" || { cat "$work/verify.out"; fail "systemd-analyze verify complained"; }
echo "ok"
sed 's/^ProtectSystem=strict/ProtectSystem=stric/' "$work/bitbucket-zdu-exporter.service" >"$work/broken.service"
verify_quiet "$work/broken.service" && fail "verify accepted ProtectSystem=stric: the check cannot fail"
echo "ok: a misspelt value is caught ($(head -n1 "$work/verify.out" | sed 's/.*: //'))"

step "systemd-analyze security --offline"
systemd-analyze security --offline=yes "$work/bitbucket-zdu-exporter.service" >"$work/security.out" 2>&1 || true
grep '✗' "$work/security.out" | sed 's/  */ /g' || true
score="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$work/security.out")"
[ -n "$score" ] || { cat "$work/security.out"; fail "no exposure score in the output"; }
echo "exposure score: $score (at most $MAX_EXPOSURE allowed)"
threshold="$(awk -v m="$MAX_EXPOSURE" 'BEGIN { printf "%d", m * 10 + 0.5 }')"
systemd-analyze security --offline=yes --threshold="$threshold" "$work/bitbucket-zdu-exporter.service" >/dev/null 2>&1 \
  || fail "exposure $score is above $MAX_EXPOSURE"
step "systemd unit passed"
