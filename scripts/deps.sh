#!/usr/bin/env bash
# Installs what strata needs to build and test on Debian 12 (run as root, or
# with sudo available).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libcriterion-dev libcjson-dev libsqlite3-dev libncurses-dev tmux sqlite3)
# the Vulkan backend: shader compiler, headers and loader, lavapipe (the Vulkan
# device CI tests on), validation layers (enabled by the tests)
pkgs+=(glslang-tools spirv-tools libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers vulkan-tools)
# fuzzing (scripts/fuzz.sh, run by scripts/test.sh): clang and its libFuzzer runtime
pkgs+=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
