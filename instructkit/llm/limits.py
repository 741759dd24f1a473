"""Rate limits (requests and tokens per minute) and the retry backoff."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import deque

__all__ = ["RateLimiter", "backoff_delay", "retry_after_seconds"]

WINDOW = 60.0


class RateLimiter:
    """Sliding one-minute windows for requests (``rpm``) and tokens (``tpm``).

    ``acquire(tokens)`` waits until one more request of ``tokens`` fits in both windows.
    Concurrency is bounded separately (a semaphore around each request in flight).
    """

    def __init__(self, rpm: int | None = None, tpm: int | None = None,
                 clock=time.monotonic) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._clock = clock
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._token_sum = 0
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        while self._requests and now - self._requests[0] >= WINDOW:
            self._requests.popleft()
        while self._tokens and now - self._tokens[0][0] >= WINDOW:
            self._token_sum -= self._tokens.popleft()[1]

    def wait_time(self, tokens: int, now: float) -> float:
        """Seconds until a request of ``tokens`` fits (0 when it fits now)."""
        self._expire(now)
        wait = 0.0
        if self.rpm and len(self._requests) >= self.rpm:
            wait = max(wait, self._requests[0] + WINDOW - now)
        if self.tpm and self._tokens:
            # a request bigger than the whole budget waits for an empty window, then goes
            need = min(tokens, self.tpm)
            excess = self._token_sum + need - self.tpm
            if excess > 0:
                freed = 0
                for t, n in self._tokens:
                    freed += n
                    if freed >= excess:
                        wait = max(wait, t + WINDOW - now)
                        break
        return wait

    async def acquire(self, tokens: int = 0) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self._lock:
            while True:
                now = self._clock()
                wait = self.wait_time(tokens, now)
                if wait <= 0:
                    self._requests.append(now)
                    if self.tpm:
                        self._tokens.append((now, tokens))
                        self._token_sum += tokens
                    return
                await asyncio.sleep(wait)


def backoff_delay(attempt: int, initial: float, maximum: float,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(max, initial * 2**attempt))."""
    cap = min(maximum, initial * (2 ** attempt))
    return (rng or random).uniform(0, cap) if cap > 0 else 0.0


def retry_after_seconds(headers) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, if the server sent one."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
