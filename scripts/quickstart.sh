#!/usr/bin/env bash
# Fetch the model, build Deja, and run it.
#
# With a provider key in the environment (OPENAI_API_KEY, DEEPSEEK_API_KEY,
# ZHIPU_API_KEY or DASHSCOPE_API_KEY) it serves config/deja.toml against the
# real providers. Without one it runs the DEMO: config/demo.toml in front of
# Deja's built-in SIMULATED upstream, sends two requests through it to show
# a miss and a cache hit, and keeps serving on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 models/fetch.py
cargo build --release --bin deja
DEJA=target/release/deja
export DEJA_ADMIN_TOKEN="${DEJA_ADMIN_TOKEN:-demo-admin-token}"

if [[ -n "${OPENAI_API_KEY:-}${DEEPSEEK_API_KEY:-}${ZHIPU_API_KEY:-}${DASHSCOPE_API_KEY:-}" ]]; then
  echo "==> provider key found: serving config/deja.toml on http://127.0.0.1:8080"
  exec "$DEJA" serve --config config/deja.toml
fi

echo "==> no provider key set: running the DEMO against the SIMULATED upstream (canned answers, not a real model)"
"$DEJA" mock-upstream --listen 127.0.0.1:9901 &
MOCK_PID=$!
"$DEJA" serve --config config/demo.toml &
DEJA_PID=$!
trap 'kill $DEJA_PID $MOCK_PID 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

ask() {
  echo
  echo "==> POST /v1/chat/completions  \"$1\""
  curl -s -D - -o /tmp/deja-demo-body.json http://127.0.0.1:8080/v1/chat/completions \
    -H 'content-type: application/json' \
    -d "{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"$1\"}]}" \
    | grep -i '^x-deja-' || true
  python3 -c 'import json; print("    answer:", json.load(open("/tmp/deja-demo-body.json"))["choices"][0]["message"]["content"])'
}
ask "How do I reset my password?"
ask "How can I reset my password?"

echo
echo "==> Deja (DEMO) is serving on http://127.0.0.1:8080 — point an OpenAI SDK at http://127.0.0.1:8080/v1"
echo "    stats: DEJA_ADMIN_TOKEN=$DEJA_ADMIN_TOKEN $DEJA cache stats      stop: Ctrl-C"
wait $DEJA_PID
