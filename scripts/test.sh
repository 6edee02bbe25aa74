#!/usr/bin/env bash
# Fetch and verify the model, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 models/fetch.py
cargo test --workspace --no-fail-fast

# The official OpenAI Python SDK against the real binary.
python3 -m venv target/sdk-venv
target/sdk-venv/bin/pip install --quiet --disable-pip-version-check openai==3.54.0
cargo build --workspace --bins  # same features as the tests: nothing to rebuild
target/sdk-venv/bin/python tests/sdk/check.py target/debug/deja
