#!/usr/bin/env bash
# The test command (CI runs it): formatting, lints, and every test, in the release profile (one
# llama.cpp build serves all three; debug builds of llama.cpp would make the real-model tests slow).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release --workspace
