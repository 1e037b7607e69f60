#!/usr/bin/env bash
# Installs what building edgebench needs when it is missing: cmake and a C/C++ compiler (llama.cpp),
# clang/libclang (bindgen), Python 3 with pip (fetching the default model), on Debian or
# Ubuntu through apt-get (as root, or with sudo). Other systems: install those by hand.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
  || ls /usr/lib/aarch64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
[[ ${#need[@]} -eq 0 ]] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "setup: please install: ${need[*]}" >&2; exit 2
fi
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo; needs: ${need[*]}" >&2; exit 2; }
  sudo=sudo
fi
echo "setup: installing ${need[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
