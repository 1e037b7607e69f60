#!/usr/bin/env bash
# The test command (CI runs it): formatting, lints, and every test, in the release profile (one
# llama.cpp build serves all three; debug builds of llama.cpp would make the real-model tests slow).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --release --all-targets -- -D warnings
# llama.cpp's OpenMP threads spin while they wait; when tests share the two cores with other
# tests (or a build), spinning threads starve each other and decoding slows ~6x. Sleeping waits
# keep the real-model tests' timing ratios sane; benchmarks leave the default alone.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
cargo test --release --workspace
