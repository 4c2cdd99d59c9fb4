#!/bin/bash
# Streaming on the GPU machine: llama2-7b Q8_0 (random weights) decoded with
# 8 device slots (--gpu-cache-layers 8: every slot streams, all 32 layers are
# uploaded every token), against the PCIe bound (pinned DMA bandwidth / bytes
# uploaded per token). Two sources, alternated REPS times in one run:
#   file:       each load read from the page cache into pinned buffers by the
#               readers, then DMA (the host copy sets the pace);
#   host cache: --host-cache 8G, every layer kept in pinned host memory (read
#               once at start), each load one DMA;
# then a host cache of 3G (some layers cached, the rest read), and, when
# THREADS is set ("6 8 12 16"), the file path with that many readers and
# other chunk sizes.
# Setup as bench/vk_bench.sh: run from the repository root there, with a
# Release build's strata in build-gpu/ and the .gl/ packages. All output on
# stdout. Settings: STREAM_N (tokens per run, default 32), REPS (default 3),
# PCIE_GBS (the pinned host-to-device bandwidth the bound uses; default: what
# vk_microbench measures now, else 51), THREADS (default: none).
. "$(dirname "$0")/vk_env.sh"
S=./build-gpu/strata; M=/tmp/models; V=assets/tiny-14m-q8_0.gguf; mkdir -p $M
N=${STREAM_N:-32}
t0=$(date +%s)
f=$M/l7-q8.gguf
[ -f $f ] || $S genmodel --preset llama2-7b --type Q8_0 -o $f --vocab $V -t 16 > /dev/null 2>&1
ls -la $f
cat $f > /dev/null # the page cache holds the file: the reads are host copies
MB=""; [ -x ./build-gpu/vk_microbench ] && MB=$(./build-gpu/vk_microbench 0 1024 2>&1 | grep -i -E "pinned|upload" | head -5)
echo "$MB"
PCIE=${PCIE_GBS:-$(echo "$MB" | grep -a "DMA from pinned" | grep -o -E "[0-9.]+ GB/s" | cut -d' ' -f1)}; PCIE=${PCIE:-51}
echo "cpus: $(nproc)  pcie bound uses ${PCIE} GB/s  tokens per run: $N"

# one run: its generation rate, the store's figures, and the rate against the bound
run() {
  local label=$1; shift
  local out; out=$(timeout 300 $S run -m $f --backend vulkan --gpu-cache-layers 8 "$@" -p "Once upon a time" -n $N --ignore-eos 2>&1 >/dev/null)
  local tps; tps=$(echo "$out" | grep -a -o -E "generated: [0-9]+ tokens, [0-9.]+ tok/s" | grep -o -E "[0-9.]+ tok/s" | cut -d' ' -f1)
  # bytes uploaded per token: every one of the n_layer layers streams each pass (a ring of 8 slots)
  local nl; nl=$(echo "$out" | grep -a -o -E "for [0-9]+ layers" | head -1 | grep -o -E "[0-9]+")
  local ld; ld=$(echo "$out" | grep -a -o -E "in [0-9]+ loads" | head -1 | grep -o -E "[0-9]+")
  local bpt; bpt=$(echo "$out" | grep -a -o -E "uploaded [0-9.]+ MiB" | head -1 |
    awk -v nl=${nl:-32} -v ld=${ld:-0} '{ if (ld > 0) printf "%.0f", $2 / ld * nl; }')
  local bound; bound=$(awk -v g=$PCIE -v m=$bpt 'BEGIN { if (m > 0) printf "%.2f", g * 1e9 / (m * 1048576); }')
  local frac; frac=$(awk -v t=$tps -v b=$bound 'BEGIN { if (b > 0) printf "%.0f%%", 100 * t / b; }')
  printf '%-34s %8s tok/s   %8s MiB/token   bound %6s tok/s   %s of bound\n' "$label" "$tps" "$bpt" "$bound" "$frac"
  echo "$out" | grep -a -E "^layer|acquisitions|read |uploaded|^gpu|^prompt" | sed 's/^/    /'
}

echo "=== resident (no budget)"
timeout 120 $S run -m $f --backend vulkan -p "Once upon a time" -n $N --ignore-eos 2>&1 >/dev/null | grep -a -E "^prompt|tok/s" | head -3
echo "=== --gpu-cache-layers 8: from the file vs from a host cache, alternated"
for r in $(seq ${REPS:-3}); do
  run "file (default readers, 4 MiB chunks)"
  run "--host-cache 8G" --host-cache 8G
done
run "--host-cache 3G" --host-cache 3G
if [ -n "$THREADS" ]; then
  echo "=== the file path: readers and chunk sizes"
  for k in $THREADS; do run "--prefetch-threads $k" --prefetch-threads $k; done
  for c in 8M 32M; do run "--prefetch-chunk $c --prefetch-threads 12" --prefetch-threads 12 --prefetch-chunk $c; done
fi
echo "== done $(( $(date +%s) - t0 ))s"
