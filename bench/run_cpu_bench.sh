#!/usr/bin/env bash
# run_cpu_bench.sh — CPU benchmark of strata on generated TinyLlama-1.1B-shaped
# models: memory bandwidth (membw), then `strata bench` per file type, then a
# summary of how close generation gets to the machine's read bandwidth.
#
# Usage: bench/run_cpu_bench.sh            (from anywhere; see bench/README.md)
# Settings (environment):
#   BENCH_DIR   scratch dir for models, membw and results (default /tmp/strata-bench)
#   BUILD_DIR   cmake build dir for strata (default <repo>/build-bench)
#   STRATA      use this strata binary instead of building one
#   PRESET      genmodel preset (default tinyllama-1.1b)
#   TYPES       file types (default "Q4_K_M Q8_0 Q4_0")
#   THREADS     threads for strata bench and the N-thread membw (default 2)
#   PP TG REPS  strata bench -p/-n/-r (default 128, 32, 3)
#   MEMBW_MIB   membw array size in MiB (default 1024)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/strata-bench}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
PRESET="${PRESET:-tinyllama-1.1b}"
TYPES="${TYPES:-Q4_K_M Q8_0 Q4_0}"
THREADS="${THREADS:-2}"
PP="${PP:-128}"
TG="${TG:-32}"
REPS="${REPS:-3}"
MEMBW_MIB="${MEMBW_MIB:-1024}"
JOBS="$(nproc 2>/dev/null || echo 2)"

mkdir -p "$BENCH_DIR"
log() { echo "== $*" >&2; }

# ---- strata ----------------------------------------------------------------
if [[ -z "${STRATA:-}" ]]; then
    log "building strata in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSTRATA_TESTS=OFF >/dev/null
    make -C "$BUILD_DIR" -j"$JOBS" strata >/dev/null
    STRATA="$BUILD_DIR/strata"
fi
[[ -x "$STRATA" ]] || { echo "run_cpu_bench.sh: no strata binary at $STRATA" >&2; exit 1; }

# ---- membw -------------------------------------------------------------------
MEMBW="$BENCH_DIR/membw"
CFLAGS=(-O2 -pthread)
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then CFLAGS+=(-mavx2); fi
log "building membw (${CFLAGS[*]})"
gcc "${CFLAGS[@]}" "$ROOT/bench/membw.c" -o "$MEMBW"

# ---- models ------------------------------------------------------------------
declare -A MODEL
for t in $TYPES; do
    lc="${t,,}"
    f="$BENCH_DIR/$PRESET-$lc.gguf"
    MODEL[$t]="$f"
    if [[ ! -s "$f" ]]; then
        log "generating $f"
        "$STRATA" genmodel --preset "$PRESET" --type "$t" -o "$f"
    fi
done

# ---- memory bandwidth --------------------------------------------------------
log "membw: $MEMBW_MIB MiB, 1 and $THREADS threads"
membw_out="$("$MEMBW" -s "$MEMBW_MIB" -t "1,$THREADS" 2>/dev/null)"
echo "$membw_out"
BW1="$(awk '$1 == "threads" && $2 == "1:" {print $3}' <<<"$membw_out")"
BWN="$(awk -v t="$THREADS:" '$1 == "threads" && $2 == t {print $3}' <<<"$membw_out" | tail -n 1)"

# ---- strata bench ------------------------------------------------------------
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_DIR/results-$STAMP.jsonl"
: >"$RESULTS"
HAVE_TIME=0
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then HAVE_TIME=1; fi

# field NAME from a one-line JSON object (numbers and simple strings only)
jfield() { sed -n "s/.*\"$1\": \"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" <<<"$2"; }

declare -A ROW
for t in $TYPES; do
    f="${MODEL[$t]}"
    log "strata bench -m $f -p $PP -n $TG -r $REPS -t $THREADS"
    tfile="$BENCH_DIR/time-$t.txt"
    if [[ $HAVE_TIME == 1 ]]; then
        out="$(/usr/bin/time -v -o "$tfile" "$STRATA" bench -m "$f" -p "$PP" -n "$TG" -r "$REPS" -t "$THREADS" --json)"
        rss_kb="$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tfile")"
        rss_mib="$(awk -v k="$rss_kb" 'BEGIN {printf "%.0f", k / 1024}')"
    else
        out="$("$STRATA" bench -m "$f" -p "$PP" -n "$TG" -r "$REPS" -t "$THREADS" --json)"
        rss_mib=""
    fi
    echo "$out" >>"$RESULTS"
    pp_line="$(grep "\"test\": \"pp$PP\"" <<<"$out" || true)"
    tg_line="$(grep "\"test\": \"tg$TG\"" <<<"$out" || true)"
    [[ -n "$rss_mib" ]] || rss_mib="$(awk -v b="$(jfield peak_rss_bytes "$tg_line")" 'BEGIN {printf "%.0f", b / 1048576}')"
    fsize="$(jfield file_size "$tg_line")"
    ROW[$t]="$(awk -v fs="$fsize" -v pp="$(jfield avg_ts "$pp_line")" -v pps="$(jfield stddev_ts "$pp_line")" \
        -v tg="$(jfield avg_ts "$tg_line")" -v tgs="$(jfield stddev_ts "$tg_line")" \
        -v gb="$(jfield avg_gbps "$tg_line")" -v bw="$BWN" -v rss="$rss_mib" \
        'BEGIN { printf "%9.1f | %9.2f ± %-7.2f | %7.2f ± %-7.2f | %9.2f | %8.0f%% | %8s", fs / 1048576, pp, pps, tg, tgs, gb, (bw > 0 ? 100 * gb / bw : 0), rss }')"
done

# ---- summary -----------------------------------------------------------------
echo
echo "strata CPU benchmark: $PRESET, $THREADS threads, pp$PP / tg$TG, $REPS reps ($(uname -m), $(nproc) CPUs)"
echo "memory read bandwidth (membw): 1 thread $BW1 GB/s, $THREADS threads $BWN GB/s"
echo
printf '| %-7s | %9s | %-19s | %-17s | %9s | %9s | %8s |\n' type "file MiB" "pp$PP t/s" "tg$TG t/s" "tg GB/s" "of membw" "RSS MiB"
printf '| %-7s | %9s | %-19s | %-17s | %9s | %9s | %8s |\n' ------- --------: ------------------: ----------------: --------: --------: -------:
for t in $TYPES; do printf '| %-7s | %s |\n' "$t" "${ROW[$t]}"; done
echo
echo "tg GB/s = weight bytes read per token x tokens/s; 'of membw' = that / the $THREADS-thread membw figure"
echo "raw results: $RESULTS"
