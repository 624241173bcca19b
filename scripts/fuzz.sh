#!/usr/bin/env bash
# Runs the cargo-fuzz targets under fuzz/ for a bounded time each (issue 4, part 5).
#
# Usage: scripts/fuzz.sh [TARGET...]        default: every target, FUZZ_SECONDS (60) each
#        FUZZ_SECONDS=600 scripts/fuzz.sh zdu_payload
#
# Not part of scripts/test.sh (too long); crashes it finds are kept as regression tests in
# tests/fuzz_regressions.rs with their inputs under tests/testdata/fuzz/<target>/.
#
# Toolchain: cargo-fuzz builds with -Z flags (sanitizer coverage), which need a nightly
# compiler. Where only a stable toolchain exists (this project's machines and CI),
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them; the script sets it unless a
# nightly toolchain is installed. The address sanitizer is off by default (the code is
# #![forbid(unsafe_code)]; libFuzzer still catches panics, overflows, OOM and timeouts);
# FUZZ_SANITIZER=address turns it on.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
JOBS="${FUZZ_JOBS:-1}"
ALL_TARGETS=(zdu_payload config_yaml web_config)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  TOOLCHAIN=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
  echo "==> no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
fi

# cargo-fuzz may not find the library target otherwise when the web config module is absent.
if [ ! -f src/web/mod.rs ]; then
  echo "==> src/web/mod.rs absent: skipping the web_config target"
  TARGETS=("${TARGETS[@]/web_config}")
fi

# -jobs makes libFuzzer write fuzz-N.log files into the current folder: only when asked.
PAR=()
if [ "$JOBS" -gt 1 ]; then PAR=(-jobs="$JOBS" -workers="$JOBS"); fi

summary=()
status=0
for t in "${TARGETS[@]}"; do
  [ -n "$t" ] || continue
  work="fuzz/work/$t"          # grows as libFuzzer finds new inputs; not committed
  seeds="fuzz/corpus/$t"       # the committed seed corpus, read only
  mkdir -p "$work" "fuzz/artifacts/$t"
  log="fuzz/work/$t.log"
  echo "==> fuzzing $t for ${SECONDS_EACH}s (log: $log)"
  stamp="fuzz/work/.$t.started"; : >"$stamp"   # only artifacts of this run count as findings
  set +e
  cargo "${TOOLCHAIN[@]}" fuzz run --sanitizer "$SANITIZER" --fuzz-dir fuzz "$t" "$work" "$seeds" -- \
    -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    "${PAR[@]}" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
  rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corpus=$(find "$work" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f -newer "$stamp" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  summary+=("$(printf '%-12s rc=%-3s execs=%-10s exec/s=%-7s cov=%-6s corpus=%-6s findings=%s' "$t" "$rc" "$execs" "$rate" "${cov:-?}" "$corpus" "$crashes")")
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    status=1
    echo "!! $t: finding(s) in fuzz/artifacts/$t; last lines of the log:"
    tail -n 30 "$log"
  fi
done

echo
echo "==> fuzz summary (${SECONDS_EACH}s per target)"
printf '%s\n' "${summary[@]}"
if [ "$status" -ne 0 ]; then
  echo "FINDINGS: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $SANITIZER --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/crash-..."
  echo "then keep the input under tests/testdata/fuzz/TARGET/ (tests/fuzz_regressions.rs runs it)."
fi
exit "$status"
