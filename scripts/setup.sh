#!/usr/bin/env bash
# Installs dependencies, builds strata, and runs it on the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target strata
./build/strata run -m assets/tiny-14m-q8_0.gguf -p "Once upon a time" -n 64 "$@"
