#!/bin/bash
# Streaming on the GPU machine: llama2-7b Q8_0 (random weights) decoded with
# 8 device slots (--gpu-cache-layers 8: every slot streams, all 32 layers are
# read from the page cache and uploaded every token) by 6, 8, 12 and 16
# reader threads, then the default (auto) and other chunk sizes, against the
# PCIe bound (pinned DMA bandwidth / bytes uploaded per token).
# Setup as bench/vk_bench.sh: run from the repository root there, with a
# Release build's strata in build-gpu/ and the .gl/ packages. All output on
# stdout. Settings: STREAM_N (tokens per run, default 32), PCIE_GBS (the
# pinned host-to-device bandwidth the bound uses, default 51, the H200's
# measured figure; vk_microbench prints it), THREADS ("6 8 12 16").
. "$(dirname "$0")/vk_env.sh"
S=./build-gpu/strata; M=/tmp/models; V=assets/tiny-14m-q8_0.gguf; mkdir -p $M
N=${STREAM_N:-32}; PCIE=${PCIE_GBS:-51}
echo "cpus: $(nproc)  pcie bound uses ${PCIE} GB/s  tokens per run: $N"
t0=$(date +%s)
f=$M/l7-q8.gguf
[ -f $f ] || $S genmodel --preset llama2-7b --type Q8_0 -o $f --vocab $V -t 16 > /dev/null 2>&1
ls -la $f
cat $f > /dev/null # the page cache holds the file: the reads are host copies
[ -x ./build-gpu/vk_microbench ] && ./build-gpu/vk_microbench 0 1024 2>&1 | grep -i -E "h2d|pinned|copy" | head -5

# one run: its generation rate, the store's figures, and the rate against the bound
run() {
  local label=$1; shift
  local out; out=$(timeout 300 $S run -m $f --backend vulkan --gpu-cache-layers 8 "$@" -p "Once upon a time" -n $N --ignore-eos 2>&1 >/dev/null)
  local tps; tps=$(echo "$out" | grep -a -o -E "generated: [0-9]+ tokens, [0-9.]+ tok/s" | grep -o -E "[0-9.]+ tok/s" | cut -d' ' -f1)
  # bytes uploaded per token: every one of the n_layer layers streams each pass (a ring of 8 slots)
  local nl; nl=$(echo "$out" | grep -a -o -E "for [0-9]+ layers" | head -1 | grep -o -E "[0-9]+")
  local bpt; bpt=$(echo "$out" | grep -a -o -E "read [0-9.]+ MiB in [0-9]+ loads" | head -1 |
    awk -v nl=${nl:-32} '{ if ($5 > 0) printf "%.0f", $2 / $5 * nl; }')
  local bound; bound=$(awk -v g=$PCIE -v m=$bpt 'BEGIN { if (m > 0) printf "%.2f", g * 1e9 / (m * 1048576); }')
  local frac; frac=$(awk -v t=$tps -v b=$bound 'BEGIN { if (b > 0) printf "%.0f%%", 100 * t / b; }')
  printf '%-34s %8s tok/s   %8s MiB/token   bound %6s tok/s   %s of bound\n' "$label" "$tps" "$bpt" "$bound" "$frac"
  echo "$out" | grep -a -E "^layer|acquisitions|read |^gpu" | sed 's/^/    /'
}

echo "=== resident (no budget)"
timeout 120 $S run -m $f --backend vulkan -p "Once upon a time" -n $N --ignore-eos 2>&1 >/dev/null | grep -a -E "^prompt|tok/s" | head -3
echo "=== --gpu-cache-layers 8, 16 MiB chunks"
for k in ${THREADS:-6 8 12 16}; do run "--prefetch-threads $k" --prefetch-threads $k; done
run "auto threads"
echo "=== chunk size, 12 threads"
for c in 8M 32M; do run "--prefetch-chunk $c --prefetch-threads 12" --prefetch-threads 12 --prefetch-chunk $c; done
echo "== done $(( $(date +%s) - t0 ))s"
