"""The one way instructkit talks to language models.

``LLMClient`` wraps ``openai.AsyncOpenAI`` (so it works unchanged against OpenAI, Azure
OpenAI, vLLM, Ollama and llama.cpp servers) and adds what a dataset build needs: an on-disk
response cache, bounded concurrency, rpm/tpm limits, retries with backoff, structured
output with validation, and a usage ledger with request/cost caps. The sync batch methods
run the async code on the client's own event loop thread, so they can be called from
plain (and from async) code alike.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import ipaddress
import json
import logging
import os
import random
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from instructkit._exceptions import BudgetExceeded, LLMError, MissingExtraError, RecipeError
from instructkit._resources import require
from instructkit.llm.cache import ResponseCache, request_key
from instructkit.llm.ledger import UsageLedger
from instructkit.llm.limits import RateLimiter, backoff_delay, retry_after_seconds
from instructkit.llm.server import EmbeddedServer, find_default_gguf
from instructkit.llm.settings import LLMSettings, resolve_cache_dir
from instructkit.llm.structured import parse_json_answer, response_format, validate_answer, with_schema_instruction
from instructkit.llm.types import ChatRequest, ChatResult, JsonRequest, JsonResult

logger = logging.getLogger("instructkit")

__all__ = ["LLMClient", "llm_from_context"]

T = TypeVar("T")

#: the order ``structured_output: auto`` tries, falling back when the server rejects one
_AUTO_MODES = ("json_schema", "json_object", "prompt")
#: when a structured-output answer is invalid, the next try samples a little more freely
_RETRY_MIN_TEMPERATURE = 0.7
_RETRY_SEED_STEP = 7919


class _Failed(Exception):
    """A request that could not be answered (after retries); becomes ``ok=False``."""


class _ModeRejected(Exception):
    """The server refused the response_format we sent (400/422)."""


def llm_from_context(ctx) -> "LLMClient":
    """The run's shared client (made on first use, closed with the run).

    Settings come from the recipe's ``llm`` section (``ctx.recipe['llm']``); the run's
    ``cache_dir`` and ``max_requests`` override the recipe's.
    """
    return ctx.shared("llm", lambda: LLMClient.from_context(ctx))


class LLMClient:
    def __init__(self, settings: LLMSettings | dict[str, Any] | None = None, *,
                 cache_dir: str | Path | None = None, max_requests: int | None = None,
                 server: EmbeddedServer | None = None) -> None:
        require("openai", "llm", "talking to language models")
        if not isinstance(settings, LLMSettings):
            settings = LLMSettings.from_config(settings)
        self.settings = s = settings
        if s.is_embedded:
            self._server = server or EmbeddedServer(
                s.embedded.model_path, n_ctx=s.embedded.n_ctx, n_threads=s.embedded.n_threads,
                startup_timeout=s.embedded.startup_timeout)
            # known before the server runs, so a rerun answered from the cache never starts it
            self.model = s.model or (Path(s.embedded.model_path).stem if s.embedded.model_path
                                     else find_default_gguf().stem)
            self.provider = s.provider or "llama.cpp"
        else:
            if not s.model:
                raise RecipeError(["llm.model: required when llm.base_url is set"])
            self._server = None
            self.model = s.model
            self.provider = s.provider or (urllib.parse.urlparse(s.base_url).hostname or "openai-compatible")
        self.cache: ResponseCache | None = None
        if s.cache:
            self.cache = ResponseCache(resolve_cache_dir(cache_dir, s))
        self.ledger = UsageLedger(model=self.model, provider=self.provider, prices=s.prices,
                                  max_requests=max_requests if max_requests is not None else s.max_requests,
                                  max_cost=s.max_cost)
        if s.structured_output != "auto":
            self._modes: tuple[str, ...] = (s.structured_output,)
        elif s.is_embedded:
            self._modes = ("json_object",)  # llama-cpp-python: json_object + schema -> grammar
        else:
            self._modes = _AUTO_MODES
        self._mode_index = 0
        if len(self._modes) > 1 and self.cache is not None:
            known = self.cache.get(self._mode_key())
            if known and known.get("mode") in self._modes:
                self._mode_index = self._modes.index(known["mode"])
        self._rng = random.Random()  # jitter only: never affects what is generated
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._openai = None
        self._sem: asyncio.Semaphore | None = None
        self._limiter: RateLimiter | None = None
        self._start_lock: asyncio.Lock | None = None
        self._closed = False

    @classmethod
    def from_context(cls, ctx) -> "LLMClient":
        settings = LLMSettings.from_config((ctx.recipe or {}).get("llm"))
        return cls(settings, cache_dir=ctx.cache_dir, max_requests=ctx.max_requests)

    # -- public sync API ----------------------------------------------------------------------
    def complete_json_many(self, requests: Sequence[JsonRequest]) -> list[JsonResult]:
        """Answers in the order of ``requests``; ``BudgetExceeded.results`` holds the partial list."""
        return self._run(self.acomplete_json_many(requests))

    def complete_json(self, request: JsonRequest) -> JsonResult:
        return self.complete_json_many([request])[0]

    def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return self._run(self.achat_many(requests))

    def chat(self, request: ChatRequest) -> ChatResult:
        return self.chat_many([request])[0]

    # -- public async API ---------------------------------------------------------------------
    async def acomplete_json_many(self, requests: Sequence[JsonRequest]) -> list[JsonResult]:
        return await self._gather(self._complete_json, requests)

    async def achat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return await self._gather(self._chat, requests)

    def _mode_key(self) -> str:
        from instructkit.records import content_hash

        return content_hash({"structured_output_mode": self.settings.base_url, "model": self.model})

    @property
    def base_url(self) -> str | None:
        return self._server.base_url if self._server is not None else self.settings.base_url

    def card_section(self) -> str:
        return self.ledger.card_section()

    def close(self) -> None:
        """Close the HTTP client, stop the event loop thread and the embedded server."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            if self._openai is not None:
                try:
                    asyncio.run_coroutine_threadsafe(self._openai.close(), self._loop).result(10)
                except Exception:  # pragma: no cover - closing must not hide the run's outcome
                    pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None
        if self._server is not None:
            self._server.stop()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the event loop thread ------------------------------------------------------------------
    def _run(self, coro: Awaitable[T]) -> T:
        if self._closed:
            raise LLMError("the LLM client is closed")
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                t = threading.Thread(target=loop.run_forever, name="instructkit-llm", daemon=True)
                t.start()
                self._loop, self._thread = loop, t
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    async def _gather(self, fn: Callable[[Any], Awaitable[T]], requests: Sequence[Any]) -> list[T]:
        results = await asyncio.gather(*(fn(r) for r in requests), return_exceptions=True)
        budget: BudgetExceeded | None = None
        for r in results:
            if isinstance(r, BudgetExceeded):
                budget = budget or r
            elif isinstance(r, BaseException):
                raise r
        if budget is not None:
            # answers that did arrive are cached and returned; the rest are None
            exc = BudgetExceeded(str(budget))
            exc.results = [None if isinstance(r, BaseException) else r for r in results]  # type: ignore[attr-defined]
            raise exc
        return list(results)  # type: ignore[arg-type]

    async def _client(self):
        if self._openai is not None:
            return self._openai
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
            self._sem = asyncio.Semaphore(self.settings.concurrency)
            self._limiter = RateLimiter(self.settings.rpm, self.settings.tpm)
        async with self._start_lock:
            if self._openai is None:
                import openai

                if self._server is not None and not self._server.running:
                    # blocking on purpose: nothing else can proceed until the server is up, and
                    # the thread that starts it must outlive it (it dies with its parent thread)
                    self._server.start()
                self._openai = openai.AsyncOpenAI(
                    base_url=self.base_url, api_key=self._api_key(),
                    max_retries=0,  # our retries, so that they are counted and capped
                    timeout=self.settings.timeout, http_client=_http_client(self.settings))
        return self._openai

    def _api_key(self) -> str:
        s = self.settings
        if s.is_embedded:
            return "sk-no-key-needed"
        name = s.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(name)
        if key:
            return key
        if s.api_key_env and not _is_loopback(s.base_url):
            raise LLMError(f"the environment variable {name} (llm.api_key_env) is not set: "
                           f"it must hold the API key for {s.base_url}")
        return "sk-no-key-needed"  # local servers (vLLM, Ollama, llama.cpp) need none

    # -- one logical call -----------------------------------------------------------------------
    async def _chat(self, req: ChatRequest) -> ChatResult:
        self.ledger.add(calls=1)
        params = {**self.settings.params, **req.params}
        try:
            ans, cached = await self._answer(req.messages, params, req.seed, None, None, 0)
        except _Failed as exc:
            self.ledger.add(failures=1)
            return ChatResult(ok=False, error=str(exc), model=self.model, provider=self.provider,
                              params=_with_seed(params, req.seed))
        return ChatResult(ok=True, text=ans["text"], finish_reason=ans.get("finish_reason"),
                          model=self.model, provider=self.provider,
                          params=_with_seed(params, req.seed), cached=cached)

    async def _complete_json(self, req: JsonRequest) -> JsonResult:
        self.ledger.add(calls=1)
        base_params = {**self.settings.params, **req.params}
        tries = 1 + self.settings.json_retries
        last_raw, last_error, params, seed = "", "", base_params, req.seed
        for attempt in range(tries):
            params, seed = dict(base_params), req.seed
            if attempt:
                # the same seed would give the same invalid answer again
                seed = None if req.seed is None else req.seed + attempt * _RETRY_SEED_STEP
                params["temperature"] = max(float(params.get("temperature") or 0.0),
                                            _RETRY_MIN_TEMPERATURE)
            try:
                ans, cached = await self._structured_answer(req, params, seed, attempt)
            except _Failed as exc:
                self.ledger.add(failures=1)
                return JsonResult(ok=False, raw=last_raw, error=str(exc), model=self.model,
                                  provider=self.provider, params=_with_seed(params, seed),
                                  attempts=attempt + 1)
            text = ans["text"]
            value, error = parse_json_answer(text)
            if error is None:
                error = ("the answer is not a JSON object" if not isinstance(value, dict)
                         else validate_answer(value, req.schema))
            if error is None:
                return JsonResult(ok=True, data=value, raw=text, model=self.model,
                                  provider=self.provider, params=_with_seed(params, seed),
                                  cached=cached, attempts=attempt + 1)
            if ans.get("finish_reason") == "length":
                error += " (cut off at max_tokens)"
            self.ledger.add(invalid_outputs=1)
            last_raw, last_error = text, error
        self.ledger.add(failures=1)
        return JsonResult(ok=False, raw=last_raw,
                          error=f"invalid structured output after {tries} answers: {last_error}",
                          model=self.model, provider=self.provider,
                          params=_with_seed(params, seed), attempts=tries)

    async def _structured_answer(self, req: JsonRequest, params: dict, seed: int | None,
                                 attempt: int) -> tuple[dict, bool]:
        while True:
            mode = self._modes[self._mode_index]
            rf = response_format(mode, req.schema)
            messages = with_schema_instruction(req.messages, req.schema) if mode == "prompt" else req.messages
            try:
                return await self._answer(messages, params, seed, req.schema, rf, attempt)
            except _ModeRejected:
                if self._modes[self._mode_index] == mode and self._mode_index + 1 < len(self._modes):
                    self._mode_index += 1
                    if self.cache is not None:
                        # remembered, so that a rerun does not probe again (zero requests)
                        self.cache.put(self._mode_key(), {"mode": self._modes[self._mode_index]})
                    logger.info("the endpoint refused response_format %s; using %s", mode,
                                self._modes[self._mode_index])
                elif self._modes[self._mode_index] == mode:
                    raise _Failed(f"the endpoint refused structured output ({mode})") from None

    async def _answer(self, messages: list[dict], params: dict, seed: int | None,
                      schema: dict | None, rf: dict | None, attempt: int) -> tuple[dict, bool]:
        """The answer to one canonical request: from the cache, else from the endpoint."""
        key = request_key(model=self.model, messages=messages, params=params, seed=seed,
                          schema=schema, response_format=rf,
                          attempt=attempt if seed is None else 0)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.ledger.add(cached=1)
                self.ledger.usage(self.model, hit.get("prompt_tokens", 0),
                                  hit.get("completion_tokens", 0), cached=True)
                return hit, True
        ans = await self._send(messages, params, seed, rf)
        if self.cache is not None:
            self.cache.put(key, ans)
        return ans, False

    # -- one request over HTTP, with retries ------------------------------------------------------
    async def _send(self, messages: list[dict], params: dict, seed: int | None,
                    rf: dict | None) -> dict:
        import openai

        client = await self._client()
        s = self.settings
        kwargs = dict(params)
        if seed is not None:
            kwargs["seed"] = seed
        if rf is not None:
            kwargs["response_format"] = rf
        est_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + int(params.get("max_tokens") or 256)
        kind = "unknown"
        for attempt in range(s.max_retries + 1):
            await self._limiter.acquire(est_tokens)
            retry_after = None
            async with self._sem:
                self.ledger.reserve()  # raises BudgetExceeded at the cap
                try:
                    # openai's documented raw ``post``: same auth, headers and errors, but no
                    # typed transform of the body and no pydantic models for the answer
                    # (~30% less client CPU per request, see bench/llm_throughput.py)
                    raw = await client.post("/chat/completions", cast_to=_response_type(),
                                            body={"model": self.model, "messages": messages, **kwargs},
                                            options={"timeout": s.timeout})
                    return self._read_response(json.loads(raw.content))
                except openai.APITimeoutError:
                    kind = "timeout"
                except openai.APIConnectionError:
                    kind = "connection"
                except (openai.AuthenticationError, openai.PermissionDeniedError,
                        openai.NotFoundError) as exc:
                    self.ledger.error(str(exc.status_code))
                    raise LLMError(
                        f"{self.base_url} answered {exc.status_code} for model '{self.model}': "
                        f"check llm.base_url, llm.model and the key in "
                        f"${s.api_key_env or 'OPENAI_API_KEY'}") from None
                except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                    self.ledger.error(str(exc.status_code))
                    if rf is not None and len(self._modes) > 1 and _mentions_format(exc):
                        raise _ModeRejected() from None
                    # the error text may quote the request: say only its status and code
                    raise _Failed(f"the endpoint rejected the request ({exc.status_code}"
                                  f"{', ' + str(exc.code) if getattr(exc, 'code', None) else ''})") from None
                except openai.APIStatusError as exc:
                    kind = str(exc.status_code)
                    if rf is not None and len(self._modes) > 1 and _mentions_format(exc):
                        # e.g. llama-cpp-python answers 500 to response_format json_schema
                        self.ledger.error(kind)
                        raise _ModeRejected() from None
                    if exc.status_code != 429 and exc.status_code < 500 and exc.status_code != 408:
                        self.ledger.error(kind)
                        raise _Failed(f"the endpoint answered {exc.status_code}") from None
                    retry_after = retry_after_seconds(exc.response.headers if exc.response is not None else None)
                except (ValueError, TypeError, KeyError, AttributeError, IndexError,
                        openai.APIResponseValidationError):
                    kind = "malformed_response"
            self.ledger.error(kind)
            if attempt >= s.max_retries:
                break
            self.ledger.add(retries=1)
            delay = backoff_delay(attempt, s.backoff_initial, s.backoff_max, self._rng)
            if retry_after is not None:
                delay = max(delay, min(retry_after, max(s.backoff_max, 60.0)))
            await asyncio.sleep(delay)
        raise _Failed(f"no answer after {s.max_retries + 1} tries (last error: {kind})")

    def _read_response(self, body: Any) -> dict:
        # KeyError/IndexError/TypeError/ValueError on a malformed body: retried
        choice = body["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise ValueError("no message content")
        usage = body.get("usage") or {}
        pt = int(usage.get("prompt_tokens") or 0)
        ct = int(usage.get("completion_tokens") or 0)
        self.ledger.usage(self.model, pt, ct)
        return {"text": text, "finish_reason": choice.get("finish_reason"),
                "prompt_tokens": pt, "completion_tokens": ct}


def _http_client(settings: LLMSettings):
    """openai's aiohttp transport (``llm.transport`` auto/aiohttp, needs ``httpx-aiohttp`` from
    the ``llm`` extra): it costs a fraction of httpx's CPU per request, which is what bounds
    throughput at high concurrency (bench/llm_throughput.py). None: openai's default httpx."""
    if settings.transport == "httpx":
        return None
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        if settings.transport == "aiohttp":
            raise MissingExtraError("llm", "httpx_aiohttp", "llm.transport: aiohttp") from None
        return None
    import openai

    return openai.DefaultAioHttpClient(timeout=settings.timeout)


@functools.cache
def _response_type():
    """The httpx ``Response`` class of the HTTP library the installed openai uses."""
    import openai

    return importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]).Response


def _with_seed(params: dict, seed: int | None) -> dict:
    return {**params, "seed": seed} if seed is not None else dict(params)


def _mentions_format(exc: Exception) -> bool:
    text = str(getattr(exc, "body", "") or "") + str(exc)
    return "response_format" in text or "json_schema" in text


def _is_loopback(url: str | None) -> bool:
    host = urllib.parse.urlparse(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
