#!/bin/bash
# The Vulkan benchmark on the GPU machine (docs/VULKAN.md, "Benchmarks").
# Run from the repository root there, with a Release build's strata and
# vk_microbench copied into build-gpu/ and the .gl/ packages of
# ../shared/docs/DEVICE.md (plus the glvnd libraries: libglvnd0 libglx0
# libegl1 libgl1 libgles2 libopengl0; .gl/extra/ may hold libsqlite3-0 for a
# machine without it). Models are generated there (random weights); all
# output on stdout.
. "$(dirname "$0")/vk_env.sh"
VK_LOADER_DEBUG=error vulkaninfo --summary 2>&1 | sed -n '/Devices:/,$p' | head -20
S=./build-gpu/strata; M=/tmp/models; V=assets/tiny-14m-q8_0.gguf; mkdir -p $M
$S devices 2>&1
t0=$(date +%s)
b() { local n=$1 f=$2; shift 2; echo "== $n $(( $(date +%s) - t0 ))s"; timeout 150 $S bench -m $f "$@" 2>&1 | grep -v "^strata bench: stored"; }
$S genmodel --preset tinyllama-1.1b --type Q4_K_M -o $M/tl-q4km.gguf --vocab $V -t 16 > /dev/null 2>&1
b tl_q4km $M/tl-q4km.gguf --backend vulkan -p 512 -n 128 -r 3
timeout 60 $S run -m $M/tl-q4km.gguf --backend vulkan -p "Once upon a time" -n 200 --ignore-eos 2>&1 | grep -a -E "^prompt|^layer|^gpu"
$S genmodel --preset tinyllama-1.1b --type Q8_0 -o $M/tl-q8.gguf --vocab $V -t 16 > /dev/null 2>&1
b tl_q8 $M/tl-q8.gguf --backend vulkan -p 512 -n 128 -r 3
rm -f $M/tl-q8.gguf
$S genmodel --preset llama2-7b --type Q4_K_M -o $M/l7-q4km.gguf --vocab $V -t 16 > /dev/null 2>&1
b l7_q4km $M/l7-q4km.gguf --backend vulkan -p 512 -n 128 -r 3
timeout 60 $S run -m $M/l7-q4km.gguf --backend vulkan -p "Once upon a time" -n 100 --ignore-eos 2>&1 | grep -a -E "^prompt|^layer|^gpu"
$S genmodel --preset llama2-7b --type Q8_0 -o $M/l7-q8.gguf --vocab $V -t 16 > /dev/null 2>&1
b l7_q8 $M/l7-q8.gguf --backend vulkan -p 512 -n 128 -r 3
STRATA_VK_PROFILE=1 $S bench -m $M/l7-q4km.gguf --backend vulkan -p 512 -n 0 -r 1 2>&1 | grep -a -A12 "vulkan profile"
./build-gpu/vk_microbench 0 1024
./build-gpu/vk_microbench 0 64 mm 512   # the prompt (mat-mat) kernels alone
f=$M/l7-q8.gguf
[ -f $f ] || $S genmodel --preset llama2-7b --type Q8_0 -o $f --vocab $V -t 16 > /dev/null 2>&1
ls -la $f
cat $f > /dev/null
echo "=== resident"
$S run -m $f --backend vulkan -p "Once upon a time" -n 64 --ignore-eos 2>&1 | grep -a -E "^prompt|^layer|^gpu"
for cfg in "" "" "--prefetch-threads 16" "--prefetch-chunk 16M"; do
  echo "=== --gpu-cache-layers 8 $cfg"
  $S run -m $f --backend vulkan --gpu-cache-layers 8 $cfg -p "Once upon a time" -n ${STREAM_N:-16} --ignore-eos 2>&1 | grep -a -E "^prompt|^layer|^gpu|acquisitions|read "
done
echo "== done $(( $(date +%s) - t0 ))s"
