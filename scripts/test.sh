#!/usr/bin/env bash
# Fetch and verify the model, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 models/fetch.py
cargo test --workspace --no-fail-fast
