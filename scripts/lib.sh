# shellcheck shell=bash
# Shared by the project's shell scripts (scripts/*.sh, tests/browser/*.sh): step and failure
# messages, and installing missing Debian packages. Source it after `set -euo pipefail`:
#   . "$(dirname "$0")/lib.sh"            (from scripts/)
#   . "$(dirname "$0")/../../scripts/lib.sh"  (from tests/browser/)
# A script may set STEP_PREFIX (its own name) before sourcing it, to tag its messages.

# step TEXT...: announces the next step.
step() { printf '\n==> %s%s\n' "${STEP_PREFIX:+$STEP_PREFIX: }" "$*"; }

# fail TEXT...: prints the failure on stderr and exits 1.
fail() { printf 'FAIL: %s%s\n' "${STEP_PREFIX:+$STEP_PREFIX: }" "$*" >&2; exit 1; }

# free_port: prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# free_ports N: prints N distinct TCP ports on 127.0.0.1, one a line, all free a moment ago
# (held open together while chosen, so two calls of free_port cannot hand out one port twice),
# from below the kernel's ephemeral range where one is free, so that the outgoing connections
# of other processes (which take ephemeral ports) are less likely to take one first.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 32768
below = range(20000, max(lo, 20000 + 8 * n))
held, ports = [], []
for p in random.sample(below, min(len(below), 4 * n + 200)):
    if len(ports) == n:
        break
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s); ports.append(p)
while len(ports) < n:  # the range below was full: the kernel's choice, still held together
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s); ports.append(s.getsockname()[1])
print("\n".join(map(str, ports)))
PY
}

# as_root COMMAND...: runs the command as root (through sudo unless already root).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE...: installs the Debian packages, quietly and without recommends;
# nothing when none is given. The caller checks afterwards that what it needs is there.
apt_install() {
  [ "$#" -gt 0 ] || return 0
  step "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need_commands COMMAND=PACKAGE...: installs the package of every missing command, then
# fails when a command is still missing.
need_commands() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  apt_install "${missing[@]}"
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 \
      || fail "${pair%%=*} is missing after installing Debian's ${pair#*=}"
  done
}

# need_python_modules MODULE=DEBIAN_PACKAGE=PYPI_PACKAGE...: makes every Python module
# importable by python3: Debian's package first (none when DEBIAN_PACKAGE is empty), pip's when
# python3 is not Debian's own or Debian has none; fails when one still cannot be imported.
need_python_modules() {
  local spec mod deb pypi missing=()
  for spec in "$@"; do
    IFS='=' read -r mod deb _ <<<"$spec"
    python3 -c "import $mod" >/dev/null 2>&1 || [ -z "$deb" ] || missing+=("$deb")
  done
  apt_install "${missing[@]}"
  for spec in "$@"; do
    IFS='=' read -r mod _ pypi <<<"$spec"
    if ! python3 -c "import $mod" >/dev/null 2>&1; then
      step "installing $pypi with pip (python3 is not Debian's)"
      python3 -m pip install --quiet --disable-pip-version-check "$pypi" \
        || fail "cannot install $pypi with pip"
    fi
    python3 -c "import $mod" >/dev/null 2>&1 || fail "python3 cannot import $mod"
  done
}
