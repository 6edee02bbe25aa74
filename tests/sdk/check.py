#!/usr/bin/env python3
"""Deja against the official `openai` Python SDK, over real sockets.

Starts `deja mock-upstream` and `deja serve` (binary given as argv[1]), each on
a port it binds itself, stops with an error if either never becomes ready, and
checks what an SDK user relies on: plain and streamed completions (with the
mock streaming in each provider style: usage null in every chunk, absent until
the last, on the final content chunk, or never), cache hits,
the ladder falling back on 429/500/timeouts, no fallback on 400, the exception
classes for 401/404/413/502, and that the upstream never sees the client's key.
providers.py runs the same kind of checks against Anthropic- and Gemini-kind
rungs (the mock speaking each provider's own API), and fallback across kinds;
verifier.py the grey-band verifier and conversation hits, with the mock as
the judge.
"""

import atexit
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import openai

import messages_door
import providers
import responses_door
import verifier

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEJA = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/deja")
CLIENT_KEY = "sk-sdk-client-key"
READY_TIMEOUT_S = 60
MOCK = None  # http://127.0.0.1:<port>, once the mock has said where it listens
PROXY = None

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ADDR = re.compile(r"addr=(127\.0\.0\.1:\d+)")


class Child:
    """A child process whose stderr is read in the background: the address it
    logs once it listens is picked up, warnings are passed through, and the
    last lines are kept for the error report if it never becomes ready."""

    def __init__(self, name, args, env):
        self.name = name
        self.addr = None
        self.tail = []
        self.listening = threading.Event()
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            line = ANSI.sub("", line.rstrip())
            self.tail = (self.tail + [line])[-20:]
            if " WARN " in line or " ERROR " in line:
                print(f"[{self.name}] {line}", file=sys.stderr)
            found = ADDR.search(line)
            if found and "listening" in line and not self.listening.is_set():
                self.addr = found.group(1)
                self.listening.set()

    def wait_listening(self, deadline):
        while not self.listening.wait(0.05):
            if self.proc.poll() is not None:
                fail(f"{self.name} exited with status {self.proc.returncode} before listening", self)
            if time.monotonic() > deadline:
                fail(f"{self.name} did not report a listening address within {READY_TIMEOUT_S}s", self)
        return self.addr

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


CHILDREN = []


def stop_children():
    while CHILDREN:
        CHILDREN.pop().stop()


def fail(message, child=None):
    print(f"check.py: {message}", file=sys.stderr)
    if child is not None:
        print(f"last lines from {child.name}:\n  " + "\n  ".join(child.tail), file=sys.stderr)
    stop_children()
    sys.exit(2)


def wait_ready(url, child, deadline):
    while True:
        if child.proc.poll() is not None:
            fail(f"{child.name} exited with status {child.proc.returncode} before it was ready", child)
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            fail(f"{child.name} was not ready at {url} within {READY_TIMEOUT_S}s", child)
        time.sleep(0.1)


def mock(path, body=None):
    req = urllib.request.Request(MOCK + path, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def fault(model, *faults):
    mock("/_mock/faults", {"model": model, "faults": list(faults)})


def stream_style(usage, **framing):
    mock("/_mock/stream_style", {"usage": usage, **framing})


def entries():
    req = urllib.request.Request(PROXY + "/admin/stats", headers={"authorization": "Bearer sdk-admin"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["entries"]


def wait_for(condition, what, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting until {what}")
        time.sleep(0.02)


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
    global MOCK, PROXY
    atexit.register(stop_children)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not os.access(DEJA, os.X_OK):
        fail(f"no deja binary at {DEJA}: build it with `cargo build -p deja --bin deja`")
    tmp = tempfile.mkdtemp(prefix="deja-sdk-")
    # Each process binds port 0 itself and logs the address it got: no port
    # is picked here and then reused.
    env = dict(os.environ, DEJA_CLIENT_KEYS=CLIENT_KEY, DEJA_ADMIN_TOKEN="sdk-admin", NO_COLOR="1",
               RUST_LOG="warn,deja=info", **{providers.ANTHROPIC_KEY_ENV: "sk-ant-sdk",
                                             providers.GEMINI_KEY_ENV: "AIza-sdk"})
    deadline = time.monotonic() + READY_TIMEOUT_S
    mock_proc = Child("mock upstream", [DEJA, "mock-upstream", "--listen", "127.0.0.1:0"], env)
    CHILDREN.append(mock_proc)
    MOCK = "http://" + mock_proc.wait_listening(deadline)
    wait_ready(MOCK + "/v1/models", mock_proc, deadline)

    config = (ROOT / "config/demo.toml").read_text()
    config = (config.replace("http://127.0.0.1:9901", MOCK)
              .replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
              .replace("data/demo.sled", f"{tmp}/store")
              .replace('model_dir = "models"', f'model_dir = "{ROOT}/models"')
              .replace('first_byte_timeout = "15s"', 'first_byte_timeout = "1s"')
              # Many failures are injected below; cooling is the Rust tests' subject.
              .replace("failures_to_cool = 3", "failures_to_cool = 1000"))
    config = verifier.widen_band(config)
    config += providers.extra_toml(MOCK) + verifier.extra_toml()
    cfg = pathlib.Path(tmp) / "deja.toml"
    cfg.write_text(config)
    proxy_proc = Child("deja", [DEJA, "serve", "--config", str(cfg)], env)
    CHILDREN.append(proxy_proc)
    PROXY = "http://" + proxy_proc.wait_listening(deadline)
    wait_ready(PROXY + "/readyz", proxy_proc, deadline)
    try:
        run_checks()
    finally:
        stop_children()
    failed = sum(1 for _, e in RESULTS if e)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run_checks():
    client = openai.OpenAI(base_url=f"{PROXY}/v1", api_key=CLIENT_KEY, max_retries=0)
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
        stored_before = entries()
        for expected in ("miss", "exact"):
            with client.chat.completions.with_streaming_response.create(
                    model="auto", stream=True, messages=[{"role": "user", "content": "Tell me a short story"}]) as resp:
                assert resp.headers["x-deja-cache"] == expected, dict(resp.headers)
                text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
            assert text.endswith("Tell me a short story"), text
            wait_for(lambda: entries() > stored_before, "the streamed answer is stored")

    @check("stream with include_usage ends with a usage chunk")
    def _():
        chunks = list(client.chat.completions.create(model="auto", stream=True, stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "usage please"}]))
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    styles = [("null_in_every_chunk", {}), ("absent_until_last", {"crlf": True}),
              ("on_final_chunk", {"keep_alive": True}), ("never", {"split_events": True})]
    for usage, framing in styles:
        for include_usage in (False, True):
            @check(f"stream, provider usage {usage}, include_usage={include_usage}: whole, then cached whole")
            def _(usage=usage, framing=framing, include_usage=include_usage):
                stream_style(usage, **framing)
                try:
                    question = f"Stream style {usage}, usage asked {include_usage}"
                    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
                    stored_before = entries()
                    for expected in ("miss", "exact"):
                        with client.chat.completions.with_streaming_response.create(
                                model="auto", stream=True, messages=[{"role": "user", "content": question}],
                                **extra) as resp:
                            assert resp.headers["x-deja-cache"] == expected, dict(resp.headers)
                            chunks = list(resp.parse())
                        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
                        assert text.endswith(question), (expected, text)
                        assert any(ch.choices and ch.choices[0].finish_reason == "stop" for ch in chunks), chunks
                        with_usage = [ch for ch in chunks if ch.usage is not None]
                        if not include_usage:
                            assert not with_usage, with_usage
                            assert all(ch.choices for ch in chunks), "no usage-only chunk unless asked"
                        elif expected == "miss" and usage != "never":
                            assert with_usage[-1].usage.total_tokens > 0, chunks
                        if expected == "miss":
                            # The entry is written just after [DONE]: wait for it, not a guess.
                            wait_for(lambda: entries() > stored_before, "the streamed answer is stored")
                    r = ask(question)
                    assert r.headers["x-deja-cache"] == "exact", dict(r.headers)
                    assert r.parse().choices[0].message.content.endswith(question)
                finally:
                    stream_style("null_in_every_chunk")

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
        bad = openai.OpenAI(base_url=f"{PROXY}/v1", api_key="sk-wrong", max_retries=0)
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

    for sparse in (False, True):
        providers.run_provider_checks(client, check, fault, status, stream_style, sparse)

    responses_door.run_responses_checks(client, check, mock, entries)
    messages_door.run_messages_checks(PROXY, CLIENT_KEY, check)

    judge_calls = lambda: mock("/_mock/calls")["by_model"].get(verifier.JUDGE_MODEL, 0)  # noqa: E731
    verifier.run_verifier_checks(client, check, mock, judge_calls)

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
