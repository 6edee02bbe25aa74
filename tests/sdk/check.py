#!/usr/bin/env python3
"""Deja against the official `openai` Python SDK, over real sockets.

Starts `deja mock-upstream` and `deja serve` (binary given as argv[1]) and
checks what an SDK user relies on: plain and streamed completions, cache hits,
the ladder falling back on 429/500/timeouts, no fallback on 400, the exception
classes for 401/404/413/502, and that the upstream never sees the client's key.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import openai

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEJA = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/deja")
CLIENT_KEY = "sk-sdk-client-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MOCK_PORT, PROXY_PORT = free_port(), free_port()
MOCK = f"http://127.0.0.1:{MOCK_PORT}"


def mock(path, body=None):
    req = urllib.request.Request(MOCK + path, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def fault(model, *faults):
    mock("/_mock/faults", {"model": model, "faults": list(faults)})


def status(code):
    return {"kind": "status", "status": code}


RESULTS = []


def check(name):
    def wrap(fn):
        try:
            fn()
            RESULTS.append((name, None))
            print(f"ok      {name}")
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            RESULTS.append((name, e))
            print(f"FAILED  {name}: {type(e).__name__}: {e}")
        return fn
    return wrap


def main():
    tmp = tempfile.mkdtemp(prefix="deja-sdk-")
    config = (ROOT / "config/demo.toml").read_text()
    config = (config.replace("127.0.0.1:9901", f"127.0.0.1:{MOCK_PORT}")
              .replace("127.0.0.1:8080", f"127.0.0.1:{PROXY_PORT}")
              .replace("data/demo.sled", f"{tmp}/store")
              .replace('model_dir = "models"', f'model_dir = "{ROOT}/models"')
              .replace('first_byte_timeout = "15s"', 'first_byte_timeout = "1s"'))
    cfg = pathlib.Path(tmp) / "deja.toml"
    cfg.write_text(config)
    env = dict(os.environ, DEJA_CLIENT_KEYS=CLIENT_KEY, DEJA_ADMIN_TOKEN="sdk-admin", RUST_LOG="warn")
    procs = [subprocess.Popen([DEJA, "mock-upstream", "--listen", f"127.0.0.1:{MOCK_PORT}"], env=env),
             subprocess.Popen([DEJA, "serve", "--config", str(cfg)], env=env)]
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PROXY_PORT}/readyz")
                break
            except OSError:
                time.sleep(0.1)
        run_checks()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    failed = sum(1 for _, e in RESULTS if e)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run_checks():
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{PROXY_PORT}/v1", api_key=CLIENT_KEY, max_retries=0)
    ask = lambda text, **kw: client.chat.completions.with_raw_response.create(  # noqa: E731
        model="auto", messages=[{"role": "user", "content": text}], **kw)

    @check("plain completion")
    def _():
        r = ask("What is your refund policy?")
        c = r.parse()
        assert c.choices[0].message.content.endswith("What is your refund policy?"), c
        assert c.usage.total_tokens > 0
        assert r.headers["x-deja-cache"] == "miss"

    @check("exact hit on repeat")
    def _():
        r = ask("What is your refund policy?")
        assert r.headers["x-deja-cache"] == "exact", dict(r.headers)

    @check("streamed completion, then replayed from cache as a stream")
    def _():
        for expected in ("miss", "exact"):
            with client.chat.completions.with_streaming_response.create(
                    model="auto", stream=True, messages=[{"role": "user", "content": "Tell me a short story"}]) as resp:
                assert resp.headers["x-deja-cache"] == expected, dict(resp.headers)
                text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
            assert text.endswith("Tell me a short story"), text

    @check("stream with include_usage ends with a usage chunk")
    def _():
        chunks = list(client.chat.completions.create(model="auto", stream=True, stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "usage please"}]))
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    @check("ladder falls back on 429, 500 and a timeout")
    def _():
        fault("glm-4-plus", status(429))
        fault("deepseek-v4-flash", status(500))
        fault("qwen3-32b", {"kind": "delay", "ms": 3000})
        r = ask("fallback please")
        assert r.headers["x-deja-model"] == "deepseek-v4-pro", dict(r.headers)
        assert r.headers["x-deja-attempts"] == "4"

    @check("no fallback on 400")
    def _():
        fault("glm-4-plus", status(400))
        try:
            ask("bad request please")
            raise AssertionError("expected BadRequestError")
        except openai.BadRequestError as e:
            assert e.status_code == 400

    @check("401 raises AuthenticationError")
    def _():
        bad = openai.OpenAI(base_url=f"http://127.0.0.1:{PROXY_PORT}/v1", api_key="sk-wrong", max_retries=0)
        try:
            bad.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}])
            raise AssertionError("expected AuthenticationError")
        except openai.AuthenticationError:
            pass

    @check("404 raises NotFoundError")
    def _():
        try:
            client.chat.completions.create(model="gpt-99", messages=[{"role": "user", "content": "x"}])
            raise AssertionError("expected NotFoundError")
        except openai.NotFoundError:
            pass

    @check("413 for an oversized body")
    def _():
        try:
            ask("x" * 2_000_000)
            raise AssertionError("expected a 413")
        except openai.APIStatusError as e:
            assert e.status_code == 413, e.status_code

    @check("502 when every rung fails")
    def _():
        for m in ("glm-4-plus", "deepseek-v4-flash", "qwen3-32b", "deepseek-v4-pro", "gpt-4o"):
            fault(m, status(500))
        try:
            ask("everything is down")
            raise AssertionError("expected a 502")
        except openai.InternalServerError as e:
            assert e.status_code == 502, e.status_code

    @check("the upstream never sees the client's key")
    def _():
        seen = mock("/_mock/calls")["authorization"]
        assert seen, "the mock saw calls"
        assert all(CLIENT_KEY not in (v or "") for v in seen.values()), seen

    @check("models list")
    def _():
        ids = {m.id for m in client.models.list()}
        assert {"auto", "gpt-4o"} <= ids, ids


if __name__ == "__main__":
    main()
