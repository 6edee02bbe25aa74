#!/usr/bin/env bash
# Install what the end-to-end tests run (when missing), fetch and verify the
# model, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The fleet tests start their own redis-server; the dashboard test drives
# chromium through chromedriver (CHROMIUM and CHROMEDRIVER may name other
# binaries). Missing ones are installed from Debian's packages when this runs
# as root or with passwordless sudo; otherwise it stops here and says how.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
    && ! command -v google-chrome >/dev/null; then
    missing+=(chromium)
fi
if [ -z "${CHROMEDRIVER:-}" ] && ! command -v chromedriver >/dev/null; then
    missing+=(chromium-driver)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    install="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo="sudo"
    else
        echo "scripts/test.sh: the fleet and dashboard tests need ${missing[*]}, not installed here." >&2
        echo "Install them, then run scripts/test.sh again:" >&2
        echo "  sudo apt-get update && sudo env $install" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "scripts/test.sh: no apt-get here: install ${missing[*]} (redis-server, chromium, chromedriver) yourself" >&2
        exit 1
    fi
    echo "scripts/test.sh: installing ${missing[*]} for the fleet and dashboard tests" >&2
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# EmbeddingGemma's weights are under the Gemma Terms of Use
# (https://ai.google.dev/gemma/terms): its few tests run only when whoever
# runs this accepts them with DEJA_ACCEPT_GEMMA_TERMS=1 (CI does); then a
# missing model fails them instead of skipping them.
if [ "${DEJA_ACCEPT_GEMMA_TERMS:-}" = "1" ]; then
    python3 models/fetch.py --gemma --accept-gemma-terms-of-use
    export DEJA_REQUIRE_GEMMA=1
else
    python3 models/fetch.py
    echo "scripts/test.sh: EmbeddingGemma's tests are skipped; DEJA_ACCEPT_GEMMA_TERMS=1 accepts its terms and runs them" >&2
fi
cargo test --workspace --no-fail-fast

# The official OpenAI and Anthropic Python SDKs against the real binary
# (chat, /v1/responses and /v1/messages; tests/sdk/check.py).
python3 -m venv target/sdk-venv
target/sdk-venv/bin/pip install --quiet --disable-pip-version-check openai==3.54.0 anthropic==2.10.0
cargo build --workspace --bins  # same features as the tests: nothing to rebuild
target/sdk-venv/bin/python tests/sdk/check.py target/debug/deja
