"""Embeddings kept by content hash, so unchanged text is never embedded twice.

The RAG index keeps its vectors with its chunks (``rag/index.py``). Semantic dedup sees
records, not documents: a rerun over mostly the same records (a recipe rebuilt after a
change, a growing dataset) would embed everything again. ``VectorCache`` stores each
vector under ``sha256(text)`` in one sqlite file per embedder (model, backend and a hash of
the model's files), in the embedder cache folder (``INSTRUCTKIT_CACHE_DIR`` or the user
cache folder). It holds hashes and float16 vectors, never text; the file is owner-only.
``embedder.cache_vectors: false`` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instructkit._sqlite import PrivateStore, open_private_db

logger = logging.getLogger("instructkit")

__all__ = ["VectorCache", "embed_cached", "text_key"]

_SELECT_CHUNK = 500  # sqlite's host-parameter limit is 999 on old builds


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class VectorCache(PrivateStore):
    """``get_many(keys) -> {key: vector}`` and ``put_many(keys, vectors)`` for one embedder."""

    table = "vectors"

    def __init__(self, path: str | Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = int(dim)
        super().__init__()
        # vectors say something about the text they came from: owner-only (open_private_db)
        self._db = open_private_db(self.path, "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, "
                                   "vec BLOB NOT NULL) WITHOUT ROWID")
        self.hits = self.misses = 0

    @classmethod
    def for_embedder(cls, embedder: Any, cache_dir: str | Path | None = None) -> "VectorCache":
        from instructkit.embedding_backends import embedder_cache_root

        ident = f"{embedder.key}|{getattr(embedder, 'fingerprint', '')}|{embedder.dim}"
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", embedder.key.rsplit("/", 1)[-1])[:60]
        name = f"{slug}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}.sqlite3"
        return cls(embedder_cache_root(cache_dir) / "vectors" / name, embedder.dim)

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        keys = list(dict.fromkeys(keys))
        with self._lock:
            for s in range(0, len(keys), _SELECT_CHUNK):
                part = keys[s:s + _SELECT_CHUNK]
                rows = self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                                        part).fetchall()
                for k, v in rows:
                    vec = np.frombuffer(v, dtype=np.float16)
                    if len(vec) == self.dim:
                        found[bytes(k)] = vec
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        blobs = np.ascontiguousarray(vectors, dtype=np.float16)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)",
                                 [(k, blobs[i].tobytes()) for i, k in enumerate(keys)])
            self._db.execute("COMMIT")



def embed_cached(embedder: Any, texts: Sequence[str], cache: VectorCache | None, *,
                 batch_size: int | None = None) -> np.ndarray:
    """Vectors of ``texts`` (float32 rows), embedding only texts the cache does not hold."""
    if cache is None:
        return np.asarray(embedder.embed(list(texts), batch_size=batch_size), dtype=np.float32)
    keys = [text_key(t) for t in texts]
    found = cache.get_many(keys)
    out = np.zeros((len(texts), embedder.dim), np.float32)
    todo: dict[bytes, list[int]] = {}
    for i, k in enumerate(keys):
        v = found.get(k)
        if v is None:
            todo.setdefault(k, []).append(i)
        else:
            out[i] = v
    cache.hits += len(texts) - sum(len(v) for v in todo.values())
    cache.misses += len(todo)
    if todo:
        first = [rows[0] for rows in todo.values()]
        vecs = np.asarray(embedder.embed([texts[i] for i in first], batch_size=batch_size), np.float32)
        # what a later run reads back is float16: use the same rounding now, so a rerun
        # decides exactly as this one did
        vecs = vecs.astype(np.float16).astype(np.float32)
        for (k, rows), v in zip(todo.items(), vecs):
            out[rows] = v
        cache.put_many(list(todo), vecs)
    return out
