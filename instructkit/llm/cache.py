"""An on-disk cache of model responses, keyed by the canonical request.

sqlite in WAL mode: every answer is committed as soon as it arrives, so a run killed with
``kill -9`` loses at most the answers still in flight and a rerun asks only for those. The
cache holds the model's answers and token counts under a hash of the request; it never
holds request headers, so no API key can end up in it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from instructkit._exceptions import LLMError
from instructkit._sqlite import PrivateStore, open_private_db
from instructkit.records import content_hash

logger = logging.getLogger("instructkit")

__all__ = ["ResponseCache", "request_key"]

CACHE_VERSION = 1
#: seconds to wait for another process that holds the cache database
LOCK_TIMEOUT = 30.0


def request_key(*, model: str, messages: list[dict], params: dict[str, Any], seed: int | None,
                schema: dict | None = None, response_format: Any = None,
                attempt: int = 0) -> str:
    """sha256 of the canonical request: what the model sees and how it samples."""
    parts: dict[str, Any] = {"v": CACHE_VERSION, "model": model, "messages": messages,
                             "params": params, "seed": seed}
    if schema is not None:
        parts["schema"] = schema
        parts["response_format"] = response_format
    if attempt:
        # retries of an unseeded request must not all map to the first answer
        parts["attempt"] = attempt
    return content_hash(parts)


class ResponseCache(PrivateStore):
    """``get(key) -> dict | None`` and ``put(key, value)``; safe across threads and processes."""

    table = "responses"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "llm-responses.sqlite3"
        super().__init__()
        self._warned = False
        try:  # model answers may echo what they were shown: owner-only (open_private_db)
            self._db = open_private_db(self.path, "CREATE TABLE IF NOT EXISTS responses ("
                                       "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)",
                                       timeout=LOCK_TIMEOUT)
        except sqlite3.Error as exc:
            raise LLMError(f"the response cache {self.path} cannot be used ({_why(exc)}); wait for "
                           "the other process, point llm.cache_dir or INSTRUCTKIT_CACHE_DIR "
                           "elsewhere, or set llm.cache: false") from None

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError as exc:  # locked past the timeout: ask the model instead
            self._warn(exc)
            return None
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = json.dumps(value, ensure_ascii=False, sort_keys=True)
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO responses (key, value, created) "
                                 "VALUES (?, ?, strftime('%s','now'))", (key, blob))
        except sqlite3.OperationalError as exc:  # the answer is used; only its caching is lost
            self._warn(exc)

    def _warn(self, exc: sqlite3.Error) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("the response cache %s is busy (%s): going on without it", self.path, _why(exc))



def _why(exc: sqlite3.Error) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg[:120]
