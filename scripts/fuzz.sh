#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang, generates their seed
# corpora, and runs each target for SECONDS (default 30; 0 = build and seed
# only), printing executions and crashes. Exits 1 if any target crashed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: gguf tokenizer chat
#
# Environment: FUZZ_BUILD   build dir (default build-fuzz)
#              FUZZ_OUT     corpora, logs and crash artifacts (default $FUZZ_BUILD/fuzz-out);
#                           the corpora grow across runs
#              FUZZ_FORK    N > 1: run each target in libFuzzer's fork mode with N
#                           workers, going on after crashes (long runs)
#              FUZZ_NO_BUILD=1  use the binaries already in FUZZ_BUILD
# A crash leaves FUZZ_OUT/artifacts/<target>-crash-*: reproduce it with
#   $FUZZ_BUILD/fuzz_<target> FILE
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf tokenizer chat)
B=${FUZZ_BUILD:-build-fuzz}
OUT=${FUZZ_OUT:-$B/fuzz-out}
CLANG=${CLANG:-clang}

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  if ! command -v "$CLANG" >/dev/null; then
    echo "fuzz.sh: $CLANG not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
  fi
  CC="$CLANG" cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DSTRATA_FUZZ=ON -DSTRATA_TSAN=OFF \
    -DSTRATA_VULKAN=OFF >/dev/null
  build=(fuzz_gen_seeds test_gguf_asan)
  for t in "${targets[@]}"; do build+=("fuzz_$t"); done
  cmake --build "$B" -j"$(nproc)" --target "${build[@]}"
fi

# seeds: regenerated every run (cheap; with FUZZ_NO_BUILD=1 only when absent);
# the working corpora are kept
mkdir -p "$OUT/artifacts" "$OUT/logs"
if [ "${FUZZ_NO_BUILD:-0}" != 1 ] || [ ! -d "$OUT/seeds" ]; then
  rm -rf "$OUT/seeds"
  mkdir -p "$OUT/seeds/gguf"
  "$B/fuzz_gen_seeds" "$OUT/seeds"
  STRATA_SEED_DIR="$(cd "$OUT/seeds/gguf" && pwd)" "$B/test_gguf_asan" --jobs 1 >/dev/null 2>&1 ||
    { echo "fuzz.sh: test_gguf_asan failed while dumping the malformed fixtures" >&2; exit 1; }
fi
for t in gguf tokenizer chat; do
  echo "fuzz.sh: $(ls "$OUT/seeds/$t" | wc -l) seeds for fuzz_$t"
done
[ "$secs" -gt 0 ] || exit 0

declare -A maxlen=([gguf]=65536 [tokenizer]=4096 [chat]=16384)
fail=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$OUT/corpus/$t"
  log="$OUT/logs/$t.log"
  rm -f "$OUT/artifacts/$t-"*
  opts=(-max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048
        -max_len="${maxlen[$t]:-4096}" -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-")
  fork=${FUZZ_FORK:-1}
  if [ "$fork" -gt 1 ]; then opts+=(-fork="$fork" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1); fi
  echo "fuzz.sh: fuzz_$t for ${secs} s ..."
  set +e
  ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$B/fuzz_$t" "${opts[@]}" "$OUT/corpus/$t" "$OUT/seeds/$t" >"$log" 2>&1
  rc=$?
  set -e
  # executions: libFuzzer's final stats, else the last "#N" status line (fork mode)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | sort -n | tail -1)
  crashes=$(find "$OUT/artifacts" -name "$t-*" -type f | wc -l)
  corpus=$(ls "$OUT/corpus/$t" | wc -l)
  line="fuzz_$t: ${execs:-0} executions in ${secs} s, corpus $corpus, crashes $crashes (exit $rc)"
  echo "fuzz.sh: $line"
  summary+=("$line")
  if [ "$crashes" -gt 0 ] || [ "$rc" -ne 0 ]; then
    fail=1
    grep -E "ERROR: |runtime error|invariant violated|SUMMARY" "$log" | head -5 || true
    find "$OUT/artifacts" -name "$t-*" -type f | head -5 | sed 's/^/  artifact: /'
  fi
done
printf 'fuzz.sh: %s\n' "${summary[@]}"
exit $fail
