#!/usr/bin/env bash
# Builds strata and its tests, then runs the whole test suite with ctest.
# Then (docs/HARDENING.md): the same suite built with AddressSanitizer +
# UndefinedBehaviorSanitizer in build-san/, and each libFuzzer target
# (tests/fuzz/) for STRATA_FUZZ_SECONDS (default 30) through scripts/fuzz.sh.
# STRATA_SAN=0 / STRATA_FUZZ_SECONDS=0 skip those two stages. Before them,
# the tensor-core kernel's emulation build (build-cm/, STRATA_CM=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure -j1 "$@")

# The cooperative-matrix (tensor-core) prompt kernel, which NVIDIA cards run
# by default: lavapipe lacks the extension, so build-cm/ compiles it with the
# three cooperative-matrix operations emulated (docs/VULKAN.md) and runs the
# kernel tests and the bundled model through it. STRATA_CM=0 skips it.
if [ "${STRATA_CM:-1}" != 0 ] && command -v glslangValidator >/dev/null; then
  cmake -S . -B build-cm -DCMAKE_BUILD_TYPE=Release -DSTRATA_VK_CM_EMULATE=ON >/dev/null
  cmake --build build-cm -j"$(nproc)" --target test_vulkan
  (cd build-cm && ctest --output-on-failure -j1 -R '^test_vulkan_cm_')
fi

if [ "${STRATA_SAN:-1}" != 0 ]; then
  # ThreadSanitizer cannot be combined with ASan: the tsan tests run in build/.
  cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Release -DSTRATA_TSAN=OFF \
    -DCMAKE_C_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" >/dev/null
  cmake --build build-san -j"$(nproc)"
  # Excluded here (they run in build/ above), each for a reason written in
  # tests/sanitizers/exclude.txt; suppressions, each with its reason, in
  # tests/sanitizers/{ubsan,lsan}.supp.
  exclude=$(awk '!/^#/ && NF {print $1}' tests/sanitizers/exclude.txt | paste -sd'|' -)
  (cd build-san &&
    ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions="$PWD/../tests/sanitizers/ubsan.supp" \
    LSAN_OPTIONS=suppressions="$PWD/../tests/sanitizers/lsan.supp":print_suppressions=0 \
    ctest --output-on-failure -j1 ${exclude:+-E "^($exclude)\$"} "$@")
fi

if [ "${STRATA_FUZZ_SECONDS:-30}" != 0 ]; then
  bash scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-30}"
fi
