"""The usage ledger: what a run asked of the model and what it cost.

It goes into the run manifest and the dataset card (``as_dict()``), and it enforces the
run's caps: ``reserve()`` is called before every request sent and raises
``BudgetExceeded`` once ``max_requests`` or ``max_cost`` is reached.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from instructkit._exceptions import BudgetExceeded

__all__ = ["UsageLedger"]


class UsageLedger:
    def __init__(self, *, model: str = "", provider: str = "",
                 prices: dict[str, dict[str, float]] | None = None,
                 max_requests: int | None = None, max_cost: float | None = None) -> None:
        self.model = model
        self.provider = provider
        self.prices = dict(prices or {})
        self.max_requests = max_requests
        self.max_cost = max_cost
        self._lock = threading.Lock()
        #: logical calls (one per request object, whatever the retries)
        self.calls = 0
        #: HTTP requests sent, retries included
        self.requests = 0
        self.cached = 0
        self.retries = 0
        #: calls that ended without a usable answer
        self.failures = 0
        #: answers that were not JSON matching the schema (each asks again, up to json_retries)
        self.invalid_outputs = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_prompt_tokens = 0
        self.cached_completion_tokens = 0
        self.cost = 0.0
        self.errors: Counter[str] = Counter()
        self.budget_exhausted: str | None = None

    # -- caps -------------------------------------------------------------------------------
    def reserve(self) -> None:
        """Count one request about to be sent, or raise ``BudgetExceeded``."""
        with self._lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                self.budget_exhausted = f"max_requests={self.max_requests} reached"
            elif self.max_cost is not None and self.cost >= self.max_cost:
                self.budget_exhausted = f"max_cost={self.max_cost} reached (cost {self.cost:.4f})"
            if self.budget_exhausted:
                raise BudgetExceeded(f"LLM budget exhausted: {self.budget_exhausted}; "
                                     "answers so far are cached, rerun with a higher cap to go on")
            self.requests += 1

    # -- counting ---------------------------------------------------------------------------
    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def usage(self, model: str, prompt_tokens: int, completion_tokens: int,
              cached: bool = False) -> None:
        with self._lock:
            if cached:
                self.cached_prompt_tokens += prompt_tokens
                self.cached_completion_tokens += completion_tokens
                return
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            price = self.prices.get(model) or self.prices.get("*")
            if price:
                self.cost += (prompt_tokens * price.get("prompt_per_million", 0.0)
                              + completion_tokens * price.get("completion_per_million", 0.0)) / 1e6

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            d: dict[str, Any] = {
                "model": self.model, "provider": self.provider,
                "calls": self.calls, "requests": self.requests, "cached": self.cached,
                "retries": self.retries, "failures": self.failures,
                "invalid_outputs": self.invalid_outputs,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_prompt_tokens": self.cached_prompt_tokens,
                "cached_completion_tokens": self.cached_completion_tokens,
                "cost": round(self.cost, 6) if self.prices else None,
                "errors": dict(sorted(self.errors.items())),
            }
            if self.max_requests is not None:
                d["max_requests"] = self.max_requests
            if self.max_cost is not None:
                d["max_cost"] = self.max_cost
            if self.budget_exhausted:
                d["budget_exhausted"] = self.budget_exhausted
            return d

    def card_section(self) -> str:
        """Markdown lines for the dataset card."""
        d = self.as_dict()
        lines = [f"- Model: `{d['model']}` ({d['provider']})",
                 f"- Requests sent: {d['requests']} (retries {d['retries']}), "
                 f"answered from cache: {d['cached']}, failed: {d['failures']}",
                 f"- Tokens: {d['prompt_tokens']} prompt, {d['completion_tokens']} completion"]
        if d["cost"] is not None:
            lines.append(f"- Cost: {d['cost']:.4f}")
        if self.budget_exhausted:
            lines.append(f"- Stopped early: {self.budget_exhausted}")
        return "\n".join(lines)
