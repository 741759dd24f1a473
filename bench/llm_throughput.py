"""Throughput of the LLM client against a loopback OpenAI-compatible endpoint that answers
every request after a fixed latency (default 200 ms) with unlimited parallelism.

Prints requests/s for the instructkit client at concurrency 1, 8, 32 and 128 next to the
ideal (concurrency / latency), and the baseline: a plain sequential loop over the `openai`
package's sync client, same endpoint, same run. Target: >= 90% of ideal at concurrency 32.

    python bench/llm_throughput.py [--latency 0.2] [--waves 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# -- the endpoint: stdlib asyncio HTTP/1.1 with keep-alive, run in its own process ------------------------
async def _serve(port_file: str, latency: float) -> None:
    body_cache: dict[str, bytes] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if method == "GET":
                    payload = b'{"object":"list","data":[{"id":"bench"}]}'
                else:
                    await asyncio.sleep(latency)
                    payload = body_cache.get("c")
                    if payload is None:
                        payload = body_cache["c"] = json.dumps({
                            "id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
                            "model": "bench", "choices": [{"index": 0, "finish_reason": "stop",
                                                           "message": {"role": "assistant", "content": "ok"}}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


def start_endpoint(latency: float) -> tuple[subprocess.Popen, str]:
    port_file = tempfile.mktemp(prefix="ik-bench-port-")
    proc = subprocess.Popen([sys.executable, __file__, "--_serve", port_file, "--latency", str(latency)])
    for _ in range(200):
        if os.path.exists(port_file) and Path(port_file).read_text():
            break
        time.sleep(0.05)
    base = f"http://127.0.0.1:{Path(port_file).read_text()}/v1"
    os.unlink(port_file)
    urllib.request.urlopen(base + "/models", timeout=5).read()
    return proc, base


# -- the measurements --------------------------------------------------------------------------------
def bench_client(base: str, concurrency: int, n: int, transport: str = "auto") -> tuple[float, float]:
    from instructkit.llm import ChatRequest, LLMClient

    client = LLMClient({"base_url": base, "model": "bench", "concurrency": concurrency,
                        "cache": False, "timeout": 30, "transport": transport})
    reqs = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}], params={"max_tokens": 4})
            for i in range(n)]
    client.chat_many(reqs[:concurrency])  # warm up: connections, event loop thread
    t, cpu = time.perf_counter(), time.process_time()
    res = client.chat_many(reqs)
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    assert all(r.ok for r in res), [r.error for r in res if not r.ok][:3]
    client.close()
    return n / dt, cpu / n * 1000


def bench_sequential_openai(base: str, n: int) -> tuple[float, float]:
    import openai

    client = openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0)
    client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "w"}], max_tokens=4)
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        client.chat.completions.create(model="bench", messages=[{"role": "user", "content": f"q{i}"}],
                                       max_tokens=4)
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    client.close()
    return n / dt, cpu / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--waves", type=int, default=10, help="requests = concurrency x waves")
    ap.add_argument("--_serve")
    args = ap.parse_args()
    if args._serve:
        asyncio.run(_serve(args._serve, args.latency))
        return
    proc, base = start_endpoint(args.latency)
    try:
        print(f"loopback endpoint, {args.latency * 1000:.0f} ms per request, unlimited parallelism")
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(client CPU per request shows what a busy machine costs)")
        print(f"{'client':<34}{'requests':>9}{'req/s':>10}{'ideal':>10}{'of ideal':>10}{'CPU ms/req':>12}")
        seq_n = 10
        rps, cpu = bench_sequential_openai(base, seq_n)
        ideal = 1 / args.latency
        print(f"{'openai sync, sequential loop':<34}{seq_n:>9}{rps:>10.1f}{ideal:>10.1f}{rps / ideal:>10.0%}{cpu:>12.2f}")
        # the default transport (aiohttp), then openai's default httpx transport for comparison
        for transport, label in (("auto", "LLMClient"), ("httpx", "LLMClient/httpx")):
            for c in (1, 8, 32, 128):
                n = max(10, c * args.waves)
                rps, cpu = bench_client(base, c, n, transport)
                ideal = c / args.latency
                print(f"{label + ', conc ' + str(c):<34}{n:>9}{rps:>10.1f}{ideal:>10.1f}"
                      f"{rps / ideal:>10.0%}{cpu:>12.2f}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
