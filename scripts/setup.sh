#!/usr/bin/env bash
# Installs dependencies, builds strata, and runs it on the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target strata
if [ -t 0 ] && [ -t 1 ]; then
  # a terminal: the chat app on the bundled model (F10 quits)
  exec ./build/strata chat -m assets/tiny-14m-q8_0.gguf "$@"
fi
# no terminal (CI, a pipe): one generation on the default prompt
./build/strata run -m assets/tiny-14m-q8_0.gguf -p "Once upon a time" -n 64 "$@"
