"""One way to open the on-disk caches (model responses, embedding vectors): SQLite in WAL
mode, owner-only, answers committed as they arrive (a killed run loses only what was in
flight)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

__all__ = ["PrivateStore", "open_private_db"]


def open_private_db(path: Path, create_sql: str, timeout: float = 30.0) -> sqlite3.Connection:
    """Connect to ``path`` (created mode 0600: what it holds says something about the text it
    came from), in WAL mode, and run ``create_sql``. Raises ``sqlite3.Error``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    db = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
    if new:
        try:
            os.chmod(path, 0o600)
        except OSError:  # pragma: no cover - e.g. some network filesystems
            pass
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a killed process (not necessarily a power cut), and is fast
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(create_sql)
    return db


class PrivateStore:
    """What the caches share: one connection (``open_private_db``) behind a lock, its row
    count and a quiet close. A cache names its ``table`` and opens ``_db`` itself."""

    table = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover
                pass
