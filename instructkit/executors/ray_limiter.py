"""One rate limit for every Ray worker: the LLM client's RPM/TPM windows live in one actor.

Each worker's ``LLMClient`` gets a ``SharedRateLimiter`` (``client.rate_limiter``) whose
``acquire`` awaits the limiter actor, so requests and tokens per minute are counted across
the cluster, not per worker. The actor is async: waiting requests do not block each other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SharedRateLimiter", "start_limiter"]


class _LimiterActor:
    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        from instructkit.llm.limits import RateLimiter

        self.limiter = RateLimiter(rpm, tpm)
        self.granted = 0

    async def acquire(self, tokens: int = 0) -> None:
        await self.limiter.acquire(tokens)
        self.granted += 1

    def count(self) -> int:
        return self.granted


def start_limiter(rpm: int | None, tpm: int | None, name: str | None = None) -> Any:
    """The limiter actor (named ``name``, so workers and tools can find it), or None when
    the recipe sets no limit."""
    if not rpm and not tpm:
        return None
    import ray

    actor = ray.remote(num_cpus=0)(_LimiterActor)
    opts = {"name": name} if name else {}
    return actor.options(**opts).remote(rpm, tpm)


class SharedRateLimiter:
    """What a worker's LLM client awaits before each request (``RateLimiter``'s interface)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def acquire(self, tokens: int = 0) -> None:
        await self.actor.acquire.remote(tokens)
