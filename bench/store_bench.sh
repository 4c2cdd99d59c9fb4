#!/usr/bin/env bash
# store_bench.sh — the layer store's benchmark (issue 3): decode speed with a
# budget of 100/50/25% of the layers, ring vs lru, prefetch auto vs off,
# buffered (pread) vs O_DIRECT reads, against the streaming bound of the
# machine: min(compute-bound rate, read bandwidth / bytes streamed per token).
#
# Usage: bench/store_bench.sh            (see docs/STORE.md for the results)
# Settings (environment):
#   BENCH_DIR   scratch dir for the model and results (default /tmp/strata-bench)
#   BUILD_DIR   cmake build dir for strata (default <repo>/build-bench)
#   STRATA      use this strata binary instead of building one
#   BASELINE    optional second strata binary (e.g. built before the store) whose
#               no-budget decode rate is measured next to this one's
#   PRESET      genmodel preset (default llama2-7b: ~3.9 GB in Q4_K_M)
#   TYPE        file type (default Q4_K_M)
#   THREADS     compute threads (default: strata's default, the physical cores)
#   TG REPS     tokens per decode test and timed repetitions (default 16, 3)
#   BUDGETS     percentages of the layers (default "100 50 25")
#   POLICIES    default "ring lru";  PREFETCH: default "auto off";  IO: default "pread direct"
#   DROP_CACHES 1: measure the cold read bandwidth after dropping the page cache
#               (root; affects the whole machine), else with O_DIRECT (default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/strata-bench}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
PRESET="${PRESET:-llama2-7b}"
TYPE="${TYPE:-Q4_K_M}"
THREADS="${THREADS:-}"
TG="${TG:-16}"
REPS="${REPS:-3}"
BUDGETS="${BUDGETS:-100 50 25}"
POLICIES="${POLICIES:-ring lru}"
PREFETCH="${PREFETCH:-auto off}"
IO="${IO:-pread direct}"
JOBS="$(nproc 2>/dev/null || echo 2)"

mkdir -p "$BENCH_DIR"
log() { echo "== $*" >&2; }
command -v jq >/dev/null || { echo "store_bench.sh: needs jq" >&2; exit 1; }

if [[ -z "${STRATA:-}" ]]; then
    log "building strata in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSTRATA_TESTS=OFF >/dev/null
    make -C "$BUILD_DIR" -j"$JOBS" strata >/dev/null
    STRATA="$BUILD_DIR/strata"
fi
[[ -x "$STRATA" ]] || { echo "store_bench.sh: no strata binary at $STRATA" >&2; exit 1; }

MODEL="$BENCH_DIR/$PRESET-${TYPE,,}.gguf"
if [[ ! -s "$MODEL" ]]; then
    log "generating $MODEL"
    "$STRATA" genmodel --preset "$PRESET" --type "$TYPE" -o "$MODEL"
fi
SIZE=$(stat -c %s "$MODEL")
INFO="$("$STRATA" info -m "$MODEL")"
meta() { awk -v k="llama.$1" '$2 == k { print $4 }' <<<"$INFO"; }
N_LAYER=$(meta block_count)
N_EMBD=$(meta embedding_length)
N_HEAD=$(meta attention.head_count)
N_HEAD_KV=$(meta attention.head_count_kv)
KV_BYTES=$(( TG * N_LAYER * 2 * (N_EMBD * N_HEAD_KV / N_HEAD) * 2 ))   # F16 K and V for n_ctx = TG

# ---- read bandwidth of the file ----------------------------------------------
now_ns() { date +%s%N; }
read_gbps() { # dd arguments...; prints GB/s (1e9)
    local t0 t1
    t0=$(now_ns)
    dd if="$MODEL" of=/dev/null bs=16M "$@" 2>/dev/null
    t1=$(now_ns)
    awk -v b="$SIZE" -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", b / ns }'
}
COLD_HOW="O_DIRECT (dd iflag=direct)"
if [[ "${DROP_CACHES:-0}" == 1 && -w /proc/sys/vm/drop_caches ]] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    COLD_HOW="page cache dropped (echo 3 > /proc/sys/vm/drop_caches)"
    BW_COLD=$(read_gbps)
else
    BW_COLD=$(read_gbps iflag=direct)
fi
BW_DIRECT=$(read_gbps iflag=direct)
cat "$MODEL" >/dev/null
BW_WARM=$(read_gbps)
log "read bandwidth: cold $BW_COLD GB/s ($COLD_HOW), O_DIRECT $BW_DIRECT GB/s, warm $BW_WARM GB/s"

# ---- runs ----------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH_DIR/store-$STAMP.jsonl"
: >"$OUT"
THREAD_ARGS=()
[[ -n "$THREADS" ]] && THREAD_ARGS=(-t "$THREADS")
run() { # label, then strata bench options
    local label="$1"; shift
    log "$label"
    "$STRATA" bench -m "$MODEL" -p 0 -n "$TG" -r "$REPS" "${THREAD_ARGS[@]}" --json "$@" |
        jq -c --arg lbl "$label" '. + {"label": $lbl}' >>"$OUT"
}

cat "$MODEL" >/dev/null   # the no-budget rate is the compute-bound one: weights in the page cache
run "none"
run "none, --prefetch off" --prefetch off
if [[ -n "${BASELINE:-}" ]]; then
    log "baseline binary $BASELINE"
    "$BASELINE" bench -m "$MODEL" -p 0 -n "$TG" -r "$REPS" "${THREAD_ARGS[@]}" --json |
        jq -c '. + {"label": "baseline binary"}' >>"$OUT"
fi
for pct in $BUDGETS; do
    layers=$(( (N_LAYER * pct + 99) / 100 ))
    for pol in $POLICIES; do
        for pf in $PREFETCH; do
            for io in $IO; do
                args=(--cache-layers "$layers" --cache-policy "$pol" --prefetch "$pf")
                [[ "$io" == direct ]] && args+=(--direct-io)
                run "$pct% ($layers layers) $pol prefetch=$pf $io" "${args[@]}"
            done
        done
    done
done

# ---- summary -------------------------------------------------------------------
{
echo "model: $MODEL ($(awk -v b="$SIZE" 'BEGIN { printf "%.2f GiB", b / 1073741824 }'), $N_LAYER layers), tg$TG x $REPS reps"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "read bandwidth of the file: cold $BW_COLD GB/s ($COLD_HOW), O_DIRECT $BW_DIRECT GB/s, warm (page cache) $BW_WARM GB/s"
echo
jq -rs --argjson bwwarm "$BW_WARM" --argjson bwdirect "$BW_DIRECT" --argjson kv "$KV_BYTES" '
  (map(select(.label == "none")) | .[0].avg_ts) as $compute |
  "compute-bound decode rate (no budget, weights in the page cache): \($compute * 100 | round / 100) tok/s",
  "",
  "| budget | policy | prefetch | reads | tok/s | ready | stall ms/tok | MiB read/tok | read GB/s | bound tok/s | of bound | peak RSS MiB | budget+KV+64 MiB |",
  "| ------ | ------ | -------- | ----- | ----: | ----: | -----------: | -----------: | --------: | ----------: | -------: | -----------: | ---------------: |",
  (.[] |
    if .store then
      .store as $s |
      ($s.acquires / (.n_gen * .reps)) as $acq_per_tok |
      ($s.bytes_read / (.n_gen * .reps)) as $bpt |
      (if $s.direct_io then $bwdirect else $bwwarm end) as $bw |
      (if $bpt > 0 then ([$compute, $bw * 1e9 / $bpt] | min) else $compute end) as $bound |
      (($s.n_slots * $s.slot_bytes + $s.fixed_bytes + $kv) / 1048576 + 64) as $lim |
      "| \(.label | split(" ")[0:3] | join(" ")) | \($s.policy) | \(if $s.prefetch then "auto" else "off" end) | \(if $s.direct_io then "O_DIRECT" else "pread" end) | \(.avg_ts * 100 | round / 100) | \(if $s.acquires > 0 then ($s.ready * 1000 / $s.acquires | round / 10) else 100 end)% | \($s.stall_ns / 1e6 / (.n_gen * .reps) * 10 | round / 10) | \($bpt / 1048576 | round) | \(if $s.read_busy_ns > 0 then ($s.bytes_read / $s.read_busy_ns * 100 | round / 100) else 0 end) | \($bound * 100 | round / 100) | \(.avg_ts / $bound * 100 | round)% | \(.peak_rss_bytes / 1048576 | round) | \($lim | round) |"
    else
      "| \(.label) | | | | \(.avg_ts * 100 | round / 100) | | | | | | \(.avg_ts / $compute * 100 | round)% of no budget | \(.peak_rss_bytes / 1048576 | round) | |"
    end)
' "$OUT"
} | tee "$BENCH_DIR/store-$STAMP.md"
log "raw results: $OUT; table: $BENCH_DIR/store-$STAMP.md"
