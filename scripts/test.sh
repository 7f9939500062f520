#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every unit, integration and end-to-end test
# of the workspace (the end-to-end tests run the real example binaries).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
