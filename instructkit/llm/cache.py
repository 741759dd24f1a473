"""An on-disk cache of model responses, keyed by the canonical request.

sqlite in WAL mode: every answer is committed as soon as it arrives, so a run killed with
``kill -9`` loses at most the answers still in flight and a rerun asks only for those. The
cache holds the model's answers and token counts under a hash of the request; it never
holds request headers, so no API key can end up in it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from instructkit.records import content_hash

__all__ = ["ResponseCache", "request_key"]

CACHE_VERSION = 1


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


class ResponseCache:
    """``get(key) -> dict | None`` and ``put(key, value)``; safe across threads and processes."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "llm-responses.sqlite3"
        self._lock = threading.Lock()
        new = not self.path.exists()
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False,
                                   isolation_level=None)
        if new:
            # model answers may echo what they were shown: owner-only
            try:
                os.chmod(self.path, 0o600)
            except OSError:  # pragma: no cover - e.g. some network filesystems
                pass
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (not necessarily a power cut), and is fast
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses ("
                         "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = json.dumps(value, ensure_ascii=False, sort_keys=True)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value, created) "
                             "VALUES (?, ?, strftime('%s','now'))", (key, blob))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover
                pass
