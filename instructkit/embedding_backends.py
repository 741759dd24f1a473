"""The embedder's backends: how each is made once from the packaged model, cached, and run.

==========  ==========================================================================
torch       sentence-transformers on PyTorch: the stock baseline.
onnx        the same network exported once to ONNX and run by ONNX Runtime; the graph is
            fused by ONNX Runtime's transformer optimizer (attention, LayerNorm, GELU).
            Vectors equal torch's to float precision.
onnx-int8   the fused graph with int8 weights (ONNX Runtime dynamic quantization, per
            channel, as sentence-transformers' ``export_dynamic_quantized_onnx_model``
            does): about 2-3x torch's speed on CPU at cosine ~0.99 to torch's vectors.
static      a model2vec static model distilled from the same network (one vector per
            token, averaged): orders of magnitude faster, lower quality.
==========  ==========================================================================

Why not sentence-transformers' own ``backend="onnx"``: it loads and exports through
``optimum-onnx``, whose only release requires ``transformers<4.58`` while
sentence-transformers 6 requires ``transformers>=5``; the two cannot be installed side by
side. The export here is the one optimum performs (torch's TorchScript ONNX exporter, then
ONNX Runtime's optimizer and quantizer) done directly; the model runs with ``onnxruntime``
and ``tokenizers`` alone (no torch at run time).

Everything derived is cached once per source model under
``<cache>/embedders/<model>-<fingerprint>/`` (``onnx/model.onnx``,
``onnx/model_qint8.onnx``, ``static/``), where ``<cache>`` is the run's cache folder,
``INSTRUCTKIT_CACHE_DIR`` or the user cache folder (``INSTRUCTKIT_EMBEDDER_CACHE_DIR``, when
set, replaces ``<cache>/embedders`` for these derived models only), and the fingerprint is a
hash of the model's files: a changed
model is exported again, never mixed up. Writes go to a temporary folder renamed into place,
so concurrent runs never see half a file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instructkit._exceptions import InstructkitError
from instructkit._resources import require

logger = logging.getLogger("instructkit")

__all__ = ["BACKENDS", "TorchEncoder", "OnnxEncoder", "StaticEncoder", "embedder_cache_root",
           "model_fingerprint", "onnx_file", "static_folder"]

BACKENDS = ("torch", "onnx", "onnx-int8", "static")
#: bump when the way an artefact is made changes, so old caches are not reused
EXPORT_VERSION = 1
#: model2vec's default output width (PCA over the token vectors)
STATIC_DIMS = 256


# -- where derived models live -----------------------------------------------------------------
def embedder_cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``INSTRUCTKIT_CACHE_DIR``, else the user cache folder; plus ``embedders``."""
    if cache_dir:
        root = Path(cache_dir).expanduser()
    elif os.environ.get("INSTRUCTKIT_CACHE_DIR"):
        root = Path(os.environ["INSTRUCTKIT_CACHE_DIR"]).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("instructkit"))
    return root / "embedders"


@functools.cache
def model_fingerprint(model_dir: str) -> str:
    """A short hash of a model folder's files (names, sizes, contents) and the export version."""
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for path in sorted(Path(model_dir).rglob("*")):
        if path.is_file() and path.suffix != ".md":
            h.update(str(path.relative_to(model_dir)).encode() + b"\0")
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:12]


def _model_slug(model_dir: Path) -> str:
    # the packaged model sits in <package>/model: name it after the package
    name = model_dir.name if model_dir.name != "model" else model_dir.parent.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def _artefact_dir(model_dir: Path, cache_dir: str | Path | None) -> Path:
    # derived models hold nothing of a run's data: INSTRUCTKIT_EMBEDDER_CACHE_DIR lets runs
    # with different cache folders (projects, test sessions) share one export
    shared = os.environ.get("INSTRUCTKIT_EMBEDDER_CACHE_DIR")
    root = Path(shared).expanduser() if shared else embedder_cache_root(cache_dir)
    return root / f"{_model_slug(model_dir)}-{model_fingerprint(str(model_dir))}"


def _build_once(target: Path, make: Callable[[Path], None], what: str) -> Path:
    """Make ``target`` (a file or folder) with ``make(tmp_target)`` unless it exists."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("embedder: building %s once (cached in %s)", what, target.parent)
    quiet_root = _DropRootNoise()
    logging.getLogger().addFilter(quiet_root)
    try:
        with tempfile.TemporaryDirectory(prefix=".building-", dir=target.parent) as tmp:
            tmp_target = Path(tmp) / target.name
            make(tmp_target)
            try:
                os.replace(tmp_target, target)
            except OSError:
                if not target.exists():  # another process won the race: use its copy
                    raise
    finally:
        logging.getLogger().removeFilter(quiet_root)
    return target


class _DropRootNoise(logging.Filter):
    """ONNX Runtime's quantizer logs advice for every tensor on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.replace(os.sep, "/").count("onnxruntime/quantization")


# -- the model folder's sentence-transformers configuration ---------------------------------------
def _st_config(model_dir: Path) -> dict[str, Any]:
    """Max length, pooling and normalisation from a sentence-transformers folder."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if not kinds or kinds[0] != "Transformer" or any(k not in ("Transformer", "Pooling", "Normalize")
                                                     for k in kinds):
        raise InstructkitError(f"the onnx backends support Transformer + Pooling (+ Normalize) "
                               f"models; {model_dir.name} has {', '.join(kinds)}: use backend torch")
    cfg = {"max_seq_length": 512, "pooling": "mean", "normalize": "Normalize" in kinds}
    st_cfg = model_dir / "sentence_bert_config.json"
    if st_cfg.is_file():
        cfg["max_seq_length"] = int(json.loads(st_cfg.read_text(encoding="utf-8")).get("max_seq_length") or 512)
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is not None:
        pc = json.loads((model_dir / pooling.get("path", "1_Pooling") / "config.json").read_text(encoding="utf-8"))
        if pc.get("pooling_mode_cls_token"):
            cfg["pooling"] = "cls"
        elif not pc.get("pooling_mode_mean_tokens", True):
            raise InstructkitError(f"{model_dir.name}: only mean or CLS pooling runs on onnx; use backend torch")
    return cfg


# -- torch -----------------------------------------------------------------------------------
class TorchEncoder:
    """sentence-transformers on PyTorch (the stock baseline)."""

    backend = "torch"
    pads = True

    def __init__(self, model_path: str, device: str = "cpu") -> None:
        st = require("sentence_transformers", "rag", "sentence embeddings")
        self.model = st.SentenceTransformer(model_path, device=device)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_seq_length = int(self.model.max_seq_length or 512)

    def token_lengths(self, texts: Sequence[str]) -> Any:
        np = require("numpy", "rag", "embeddings")
        enc = self.model.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length,
                                   add_special_tokens=True)["input_ids"]
        return np.fromiter((len(x) for x in enc), np.int64, count=len(enc))

    def encode(self, texts: Sequence[str]) -> Any:
        return self.model.encode(list(texts), batch_size=max(len(texts), 1), convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)


# -- ONNX ------------------------------------------------------------------------------------
def onnx_file(model_dir: Path, *, int8: bool, cache_dir: str | Path | None = None) -> Path:
    """The cached ONNX export of ``model_dir`` (fp32 fused, or int8), made on first use."""
    folder = _artefact_dir(model_dir, cache_dir) / "onnx"
    fp32 = _build_once(folder / "model.onnx", lambda t: _export_onnx(model_dir, t),
                       f"the ONNX export of {_model_slug(model_dir)}")
    if not int8:
        return fp32
    return _build_once(folder / "model_qint8.onnx", lambda t: _quantize(fp32, t),
                       f"the int8 ONNX model of {_model_slug(model_dir)}")


def _export_onnx(model_dir: Path, target: Path) -> None:
    """torch -> ONNX (TorchScript exporter), then ONNX Runtime's transformer optimizer."""
    torch = require("torch", "fast", "exporting the embedder to ONNX")
    require("onnxruntime", "fast", "the onnx embedder backends")
    st = require("sentence_transformers", "rag", "exporting the embedder")
    # eager attention exports the classic attention subgraph, which ONNX Runtime fuses into
    # one Attention node; the SDPA export is not recognised (measured: 1.3x slower)
    model = st.SentenceTransformer(str(model_dir), device="cpu",
                                   model_kwargs={"attn_implementation": "eager"})
    network = model[0].auto_model.eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in model.tokenizer.model_input_names]

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args))).last_hidden_state

    sample = model.tokenizer(["a short sentence", "and a somewhat longer second sentence"],
                             padding=True, return_tensors="pt")
    raw = target.with_name("raw.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # the TorchScript exporter (dynamo=False): the dynamo exporter's graph is not fused by
        # ONNX Runtime's optimizer (measured), and this is the exporter optimum uses
        torch.onnx.export(_Hidden(network), tuple(sample[n] for n in names), str(raw),
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    from onnxruntime.transformers.optimizer import optimize_model

    cfg = network.config
    try:
        fused = optimize_model(str(raw), model_type="bert", num_heads=int(cfg.num_attention_heads),
                               hidden_size=int(cfg.hidden_size), opt_level=1)
        fused.save_model_to_file(str(target))
        raw.unlink()
    except Exception as exc:  # an architecture the optimizer does not know: run it unfused
        logger.warning("embedder: ONNX graph fusion failed (%s); using the plain export", type(exc).__name__)
        os.replace(raw, target)


def _quantize(fp32: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised per batch at run time)."""
    onnx = require("onnx", "fast", "quantizing the ONNX embedder")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused nodes come from ONNX Runtime's own domain, which onnx shape inference does not
    # type: the default tensor type tells the quantizer they are float
    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


class OnnxEncoder:
    """An exported model run by ONNX Runtime; tokenised with the model's own ``tokenizer.json``."""

    pads = True

    def __init__(self, model_dir: Path, *, int8: bool, cache_dir: str | Path | None = None) -> None:
        self.backend = "onnx-int8" if int8 else "onnx"
        ort = require("onnxruntime", "fast", f"the {self.backend} embedder backend")
        tokenizers = require("tokenizers", "rag", "tokenizing for the onnx embedder")
        self.np = require("numpy", "rag", "embeddings")
        cfg = _st_config(model_dir)
        self.max_seq_length, self.pooling, self.normalize = cfg["max_seq_length"], cfg["pooling"], cfg["normalize"]
        path = onnx_file(model_dir, int8=int8, cache_dir=cache_dir)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.path = path
        # the last encoded texts: token_lengths() tokenises, encode() reuses it
        self._memo: dict[str, Any] = {}

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def token_lengths(self, texts: Sequence[str]) -> Any:
        ids = self._ids(texts)
        self._memo = dict(zip(texts, ids))
        return self.np.fromiter((len(x) for x in ids), self.np.int64, count=len(ids))

    def encode(self, texts: Sequence[str]) -> Any:
        np = self.np
        memo = self._memo
        ids = [memo.get(t) for t in texts]
        if any(x is None for x in ids):
            ids = self._ids(texts)
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), np.int64)
        mask = np.zeros((len(ids), width), np.int64)
        for i, row in enumerate(ids):
            input_ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        hidden = self.session.run(None, {k: feeds[k] for k in self.inputs})[0]
        if self.pooling == "cls":
            vecs = hidden[:, 0]
        else:
            m = mask[..., None].astype(np.float32)
            vecs = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        if self.normalize:
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs


# -- static (model2vec) --------------------------------------------------------------------------
def static_folder(model_dir: Path, cache_dir: str | Path | None = None) -> Path:
    """The cached model2vec distillation of ``model_dir``, made on first use."""
    return _build_once(_artefact_dir(model_dir, cache_dir) / "static",
                       lambda t: _distill(model_dir, t),
                       f"static embeddings distilled from {_model_slug(model_dir)} (model2vec; a few minutes on CPU)")


def _distill(model_dir: Path, target: Path) -> None:
    require("model2vec", "fast", "static embeddings")
    require("skeletoken", "fast", "distilling static embeddings")
    transformers = require("transformers", "rag", "distilling static embeddings")
    from model2vec.distill import distill_from_model

    network = transformers.AutoModel.from_pretrained(str(model_dir))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    static = distill_from_model(network, tokenizer, pca_dims=STATIC_DIMS, device="cpu")
    static.save_pretrained(str(target))


class StaticEncoder:
    """A model2vec static model: a token-vector lookup and a mean, no network at run time."""

    backend = "static"
    pads = False  # no padding cost: nothing to gain from length bucketing

    def __init__(self, model_dir: Path, cache_dir: str | Path | None = None) -> None:
        model2vec = require("model2vec", "fast", "the static embedder backend")
        self.np = require("numpy", "rag", "embeddings")
        self.path = static_folder(model_dir, cache_dir)
        self.model = model2vec.StaticModel.from_pretrained(str(self.path), normalize=True)
        self.dim = int(self.model.dim)
        self.max_seq_length = None

    def encode(self, texts: Sequence[str]) -> Any:
        # one process: the machine's cores are the caller's to share (model2vec would fork)
        np = self.np
        vecs = np.asarray(self.model.encode(list(texts), show_progress_bar=False, max_length=None,
                                            batch_size=4096, use_multiprocessing=False), np.float32)
        # the distilled table is float16: normalise again in float32
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def clear_cache(cache_dir: str | Path | None = None) -> None:
    """Remove every cached export (the next load rebuilds what it needs)."""
    shutil.rmtree(embedder_cache_root(cache_dir), ignore_errors=True)
