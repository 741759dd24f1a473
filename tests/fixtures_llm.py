"""LLM test fixtures and helpers: the real embedded llama.cpp server (session-scoped), a
stub OpenAI-compatible server for fast unit tests, and a fault-injecting HTTP proxy.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

__all__ = ["llm_server"]


@dataclass
class _ServerInfo:
    base_url: str
    model: str


@pytest.fixture(scope="session")
def llm_server():
    """The REAL embedded server (SmolLM2-135M-Instruct via llama.cpp), started once."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama_cpp is not importable: install instructkit[local] for the real-model tests")
    from instructkit.llm import EmbeddedServer

    # one thread: the test machine is shared, and llama.cpp's threads slow down badly when
    # the cores are oversubscribed
    threads = int(os.environ.get("INSTRUCTKIT_TEST_LLAMA_THREADS", "1"))
    server = EmbeddedServer(n_threads=threads, n_ctx=2048).start()
    try:
        yield _ServerInfo(base_url=server.base_url, model=server.model)
    finally:
        server.stop()


# -- a loopback HTTP server in a thread ------------------------------------------------------------
class _Server:
    def __init__(self, handler_cls) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def completion_body(text: str, model: str = "stub", prompt_tokens: int = 10,
                    completion_tokens: int = 5, finish_reason: str = "stop") -> bytes:
    return json.dumps({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}}).encode()


class StubOpenAI(_Server):
    """A fast OpenAI-compatible stub: ``responder(request_json) -> text`` or
    ``(status, body_bytes, headers)``. Counts requests, in-flight maximum and headers seen."""

    def __init__(self, responder: Callable[[dict], Any] | None = None, latency: float = 0.0) -> None:
        self.responder = responder or (lambda req: json.dumps({"answer": "ok"}))
        self.latency = latency
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

        class H(_Handler):
            def do_GET(h):
                h._send(200, json.dumps({"object": "list", "data": [{"id": "stub"}]}).encode())

            def do_POST(h):
                req = json.loads(h._body() or b"{}")
                owner = h.server.owner
                with owner.lock:
                    owner.requests.append(req)
                    owner.auth_headers.append(h.headers.get("authorization", ""))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    if owner.latency:
                        time.sleep(owner.latency)
                    out = owner.responder(req)
                finally:
                    with owner.lock:
                        owner.in_flight -= 1
                if isinstance(out, tuple):
                    h._send(out[0], out[1], out[2] if len(out) > 2 else None)
                else:
                    h._send(200, completion_body(out, model=req.get("model", "stub")))

        super().__init__(H)


FAULT_KINDS = ("429", "500", "timeout", "cut", "malformed")


class FaultProxy(_Server):
    """Forwards to ``upstream`` (an http://127.0.0.1:PORT/v1 URL), and for a ``share`` of
    POSTs answers instead with a fault: 429, 500, a hang (client timeout), a cut-off body
    or malformed JSON. The choice is a hash of the request body and how often it was seen,
    so it does not depend on timing; a request is faulted at most ``max_faults`` times.
    ``script`` (list of kinds) forces the faults of the first POSTs instead. With ``replay``,
    a request body answered before gets the same answer again (kept across ``reset``): the
    embedded server reuses the KV cache of the previous prompt, so the same request can sample
    differently depending on what was asked before it, and a test of resuming needs the model
    to answer one request one way."""

    def __init__(self, upstream: str, share: float = 0.0, kinds=FAULT_KINDS, hang: float = 2.0,
                 max_faults: int = 2, script: list[str] | None = None, retry_after: str = "0",
                 replay: bool = False, replay_delay: float = 0.5) -> None:
        from urllib.parse import urlparse

        u = urlparse(upstream)
        self.up_host, self.up_port = u.hostname, u.port
        self.share, self.kinds, self.hang, self.max_faults = share, tuple(kinds), hang, max_faults
        self.script = list(script or [])
        self.retry_after = retry_after
        self.replay: dict[str, bytes] | None = {} if replay else None
        self.replay_delay = replay_delay  # a replayed answer takes a model's time, not none
        self.lock = threading.Lock()
        self.reset()

        class H(_Handler):
            def do_GET(h):
                status, body, _ = h.server.owner._forward("GET", h.path, b"", {})
                h._send(status, body)

            def do_POST(h):
                h.server.owner._handle(h)

        super().__init__(H)

    def reset(self) -> None:
        with self.lock:
            self.seen: Counter[str] = Counter()
            self.posts = 0
            self.faults: Counter[str] = Counter()
            #: body hashes answered with a complete 200 from upstream, in order
            self.answered: list[str] = []

    def _fault_for(self, key: str) -> str | None:
        with self.lock:
            self.posts += 1
            n = self.seen[key]
            self.seen[key] += 1
            if self.script:
                return self.script.pop(0) or None
            if n >= self.max_faults or self.share <= 0:
                return None
            h = int(hashlib.sha256(f"{key}:{n}".encode()).hexdigest(), 16)
            if (h % 10_000) / 10_000 < self.share:
                return self.kinds[(h // 10_000) % len(self.kinds)]
            return None

    def _forward(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes, dict]:
        conn = http.client.HTTPConnection(self.up_host, self.up_port, timeout=600)
        try:
            conn.request(method, path, body=body or None,
                         headers={"content-type": "application/json", **headers})
            resp = conn.getresponse()
            return resp.status, resp.read(), dict(resp.getheaders())
        finally:
            conn.close()

    def _handle(self, h: _Handler) -> None:
        body = h._body()
        key = hashlib.sha256(body).hexdigest()
        fault = self._fault_for(key)
        if fault:
            with self.lock:
                self.faults[fault] += 1
        if fault == "429":
            h._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                    {"retry-after": self.retry_after})
            return
        if fault == "500":
            h._send(500, b'{"error": {"message": "upstream exploded", "type": "server_error"}}')
            return
        if fault == "timeout":
            time.sleep(self.hang)
            h.close_connection = True
            return
        if fault == "malformed":
            h._send(200, b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "tru')
            return
        recorded = self.replay.get(key) if self.replay is not None else None
        if recorded is not None:
            time.sleep(self.replay_delay)
            status, out = 200, recorded
        else:
            status, out, _ = self._forward("POST", h.path, body,
                                           {"authorization": h.headers.get("authorization", "")})
            if status == 200 and self.replay is not None:
                self.replay[key] = out
        if fault == "cut":
            h.send_response(status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(out)))
            h.end_headers()
            h.wfile.write(out[: max(1, len(out) // 2)])
            h.wfile.flush()
            h.close_connection = True
            return
        h._send(status, out)
        if status == 200:
            with self.lock:
                self.answered.append(key)
