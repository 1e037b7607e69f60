#!/usr/bin/env bash
# One command: install build dependencies if missing, build edgebench (release, native CPU), and run
# `edgebench run` with its defaults on the embedded engine and the default model (fetched into the
# model cache on first use). Extra arguments go to `edgebench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin edgebench
exec "${CARGO_TARGET_DIR:-target}/release/edgebench" run "$@"
