"""Benchmark decontamination: drop records that overlap a benchmark's test items.

A record is contaminated when one of its fields (instruction, input, output by default)

- shares a run of ``ngram`` consecutive words (default 13) with a benchmark text, or
  contains a whole benchmark text shorter than that but at least ``min_ngram`` words long
  (short texts such as PubMedQA questions cannot have a 13-gram), or
- equals a benchmark text after normalisation (NFKC, case-fold, punctuation collapsed),
  for benchmark texts of at least ``min_exact_words`` words.

Benchmarks are files or Hugging Face datasets (read offline from the local cache) read by
an adapter: ``medqa`` (USMLE), ``medmcqa``, ``pubmedqa`` (test PMIDs + questions) or
``jsonl`` (any JSON lines; text fields detected by name: question, options, context,
answer, ...). Only hashes of n-grams are kept in memory.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instructkit._exceptions import RecipeError, SourceError
from instructkit.records import Record
from instructkit.steps.base import Step
from instructkit.steps.dedup.text import exact_hash, hash_words, ngram_hashes, normalize, record_text

logger = logging.getLogger("instructkit")

__all__ = ["Benchmark", "BenchmarkItem", "load_benchmark", "benchmark_from_spec",
           "DecontaminateStep", "ADAPTERS"]


@dataclass
class BenchmarkItem:
    """One test item: its id in the benchmark and its texts (question, options, ...)."""

    id: str
    texts: list[str]


@dataclass
class Benchmark:
    name: str
    items: list[BenchmarkItem]
    origin: str = ""
    adapter: str = ""


# -- adapters: raw rows -> BenchmarkItem ------------------------------------------------------
# field names that hold benchmark text, in the order they are read
TEXT_FIELDS = ("question", "sent1", "sent2", "stem", "prompt", "query", "instruction", "input",
               "context", "contexts", "passage", "article", "abstract", "options", "choices",
               "opa", "opb", "opc", "opd", "ope", "ending0", "ending1", "ending2", "ending3",
               "answer", "answers", "long_answer", "exp", "explanation", "rationale", "output",
               "response", "text")
ID_FIELDS = ("id", "realidx", "pubid", "pmid", "qid", "question_id", "idx", "index")


def _strings(value: Any) -> list[str]:
    """Every non-empty string inside ``value`` (strings, lists, dicts of them)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (int, float, bool)):
        return []
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _row_id(row: Mapping[str, Any], fallback: str) -> str:
    for k in ID_FIELDS:
        if row.get(k) not in (None, ""):
            return str(row[k])
    return fallback


def adapt_jsonl(row: Mapping[str, Any], fallback_id: str,
                fields: Sequence[str] | None = None) -> BenchmarkItem:
    """Any JSON object: the named ``fields``, else known text fields, else every string field."""
    lower = {str(k).lower(): v for k, v in row.items()}
    names = [f.lower() for f in fields] if fields else [f for f in TEXT_FIELDS if f in lower]
    if not names:  # nothing known: every string-valued field
        names = [k for k, v in lower.items() if isinstance(v, str) and k not in ID_FIELDS]
    texts = [s for f in names for s in _strings(lower.get(f))]
    return BenchmarkItem(_row_id(row, fallback_id), texts)


def adapt_medqa(row: Mapping[str, Any], fallback_id: str, fields: Sequence[str] | None = None) -> BenchmarkItem:
    """MedQA (USMLE): question, options (dict A-E or list), answer (text)."""
    texts = _strings(row.get("question")) + _strings(row.get("options")) + _strings(row.get("answer"))
    return BenchmarkItem(_row_id(row, fallback_id), texts)


def adapt_medmcqa(row: Mapping[str, Any], fallback_id: str, fields: Sequence[str] | None = None) -> BenchmarkItem:
    """MedMCQA: question, opa-opd, exp (explanation)."""
    texts = [s for f in ("question", "opa", "opb", "opc", "opd", "exp") for s in _strings(row.get(f))]
    return BenchmarkItem(_row_id(row, fallback_id), texts)


def adapt_pubmedqa(row: Mapping[str, Any], fallback_id: str, fields: Sequence[str] | None = None) -> BenchmarkItem:
    """PubMedQA: question, contexts and long answer (ori_pqal.json or the HF layout)."""
    get = lambda *ks: next((row[k] for k in ks if k in row), None)  # noqa: E731
    ctx = get("CONTEXTS", "context", "contexts")
    if isinstance(ctx, Mapping):  # HF: context: {contexts: [...], labels: [...]}
        ctx = ctx.get("contexts")
    texts = _strings(get("QUESTION", "question")) + _strings(ctx) + _strings(get("LONG_ANSWER", "long_answer"))
    return BenchmarkItem(str(get("pubid", "PMID", "pmid") or fallback_id), texts)


ADAPTERS = {"jsonl": adapt_jsonl, "medqa": adapt_medqa, "medmcqa": adapt_medmcqa,
            "pubmedqa": adapt_pubmedqa}


def _guess_adapter(name: str) -> str:
    low = name.lower()
    if "pubmedqa" in low or "pqal" in low or "pqa_" in low:  # before medqa: "pubMEDQA"
        return "pubmedqa"
    if "medmcqa" in low:
        return "medmcqa"
    if "medqa" in low or "usmle" in low:
        return "medqa"
    return "jsonl"


def _read_pubmedqa_json(path: Path, test_ids: Path | None) -> list[tuple[str, dict]]:
    """ori_pqal.json ({pmid: {...}}) restricted to the test PMIDs when given."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"not a PubMedQA JSON file ({type(exc).__name__})", file=str(path)) from None
    if not isinstance(data, Mapping):
        raise SourceError("expected an object keyed by PMID", file=str(path))
    wanted = None
    if test_ids is not None:
        try:
            ids = json.loads(test_ids.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SourceError(f"not a PMID list ({type(exc).__name__})", file=str(test_ids)) from None
        wanted = [str(k) for k in (ids.keys() if isinstance(ids, Mapping) else ids)]
    keys = wanted if wanted is not None else list(data.keys())
    missing = [k for k in keys if k not in data]
    if missing:
        logger.warning("decontaminate: %d test PMIDs of %s are not in %s", len(missing),
                       test_ids, path.name)
    return [(k, {"pubid": k, **data[k]}) for k in keys if k in data]


def _read_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """Rows of a .jsonl / .json / .parquet / .csv file, with a location for errors."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        from instructkit.records import read_jsonl

        for n, obj in read_jsonl(path):
            yield f"{n}", obj
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SourceError(f"not valid JSON ({exc.msg}, line {exc.lineno})", file=str(path)) from None
        if isinstance(data, Mapping):
            rows = data.get("data") or data.get("test") or data.get("questions")
            if isinstance(rows, list):
                data = rows
            else:  # keyed by item id
                for k, v in data.items():
                    yield str(k), ({"id": k, **v} if isinstance(v, Mapping) else {"id": k, "text": v})
                return
        for n, obj in enumerate(data if isinstance(data, list) else [], 1):
            yield f"{n}", obj
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, obj in enumerate(pq.read_table(path).to_pylist(), 1):
            yield f"{n}", obj
    elif suffix == ".csv":
        import csv

        with path.open(encoding="utf-8", newline="") as fh:
            for n, obj in enumerate(csv.DictReader(fh), 2):
                yield f"{n}", obj
    else:
        raise SourceError("unsupported benchmark file type (use .jsonl, .json, .parquet or .csv)",
                          file=str(path))


def load_benchmark(path: str | Path | None = None, *, dataset: str | None = None,
                   name: str | None = None, adapter: str | None = None,
                   split: str = "test", config: str | None = None,
                   test_ids: str | Path | None = None,
                   fields: Sequence[str] | None = None) -> Benchmark:
    """Read a benchmark's test items from a file/folder or a (locally cached) HF dataset."""
    if dataset:
        label = name or dataset.split("/")[-1]
        adapter = adapter or _guess_adapter(dataset)
        rows = _hf_rows(dataset, config, split)
        origin = f"hf:{dataset}" + (f"/{config}" if config else "") + f":{split}"
    else:
        if path is None:
            raise RecipeError(["stages.dedup.decontaminate: a benchmark needs 'path' or 'dataset'"])
        p = Path(path)
        if p.is_dir():  # a PubMedQA folder: ori_pqal.json + test_ground_truth.json
            if (p / "ori_pqal.json").is_file():
                test_ids = test_ids or (p / "test_ground_truth.json" if (p / "test_ground_truth.json").is_file() else None)
                p = p / "ori_pqal.json"
            else:
                raise SourceError("a benchmark folder must hold ori_pqal.json (PubMedQA)", file=str(p))
        if not p.is_file():
            raise SourceError("benchmark file not found", file=str(p))
        label = name or p.stem
        adapter = adapter or _guess_adapter(str(p))
        if adapter == "pubmedqa" and p.suffix.lower() == ".json":
            if test_ids is None and (p.parent / "test_ground_truth.json").is_file():
                test_ids = p.parent / "test_ground_truth.json"
            rows = _read_pubmedqa_json(p, Path(test_ids) if test_ids else None)
            if test_ids:
                label = name or "pubmedqa_test"
        else:
            rows = list(_read_rows(p))
        origin = str(p)
    if adapter not in ADAPTERS:
        raise RecipeError([f"stages.dedup.decontaminate: unknown adapter '{adapter}' "
                           f"(use {', '.join(ADAPTERS)})"])
    fn = ADAPTERS[adapter]
    items = []
    for loc, row in rows:
        if isinstance(row, Mapping):
            item = fn(row, f"{label}:{loc}", fields)
            if item.texts:
                items.append(item)
    if not items:
        raise SourceError(f"no benchmark items with text found (adapter '{adapter}')", file=origin)
    return Benchmark(label, items, origin=origin, adapter=adapter)


def _hf_rows(dataset: str, config: str | None, split: str) -> list[tuple[str, Any]]:
    import os

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # never download at run time
    try:
        import datasets

        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as exc:
        raise SourceError(f"could not load the Hugging Face dataset offline ({type(exc).__name__}); "
                          "it must be in the local datasets cache, or give a file path",
                          file=f"hf:{dataset}") from None
    return [(f"{split}:{i}", row) for i, row in enumerate(ds)]


def benchmark_from_spec(spec: Any, base: Path | None = None) -> Benchmark | None:
    """A benchmark from a recipe/CLI spec; None when it is ``optional`` and absent.

    Spec: a path or ``hf:owner/name[:split]`` string, or ``{path | dataset, name, adapter,
    split, config, test_ids, fields, optional}``.
    """
    from instructkit.recipe.load import resolve_path

    if isinstance(spec, str):
        spec = {"dataset": spec[3:]} if spec.startswith("hf:") else {"path": spec}
        if "dataset" in spec and spec["dataset"].count(":") == 1:
            ds, split = spec["dataset"].split(":")
            spec = {"dataset": ds, "split": split}
    if not isinstance(spec, Mapping):
        raise RecipeError(["stages.dedup.decontaminate: each entry is a path or a mapping"])
    spec = dict(spec)
    optional = bool(spec.pop("optional", False))
    if spec.get("path"):
        spec["path"] = resolve_path(str(spec["path"]), base)
        if optional and not Path(spec["path"]).exists():
            logger.info("decontaminate: optional benchmark %s absent; skipped", spec["path"])
            return None
    if spec.get("test_ids"):
        spec["test_ids"] = resolve_path(str(spec["test_ids"]), base)
    try:
        return load_benchmark(**spec)
    except SourceError:
        if optional and spec.get("dataset"):
            logger.info("decontaminate: optional benchmark %s unavailable; skipped", spec["dataset"])
            return None
        raise
    except TypeError as exc:
        raise RecipeError([f"stages.dedup.decontaminate: {exc}"]) from None


# -- the index and the step ---------------------------------------------------------------------
@dataclass
class _NgramIndex:
    """Sorted n-gram hashes of one length, with the (benchmark, item) each came from."""

    hashes: np.ndarray
    owners: np.ndarray  # int64: position in DecontaminateStep._items

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Owner per query hash, or -1."""
        if len(self.hashes) == 0 or len(queries) == 0:
            return np.full(len(queries), -1, np.int64)
        pos = np.searchsorted(self.hashes, queries)
        pos[pos >= len(self.hashes)] = 0
        hit = self.hashes[pos] == queries
        return np.where(hit, self.owners[pos], -1)


@dataclass
class DecontaminationReport:
    name: str
    origin: str
    items: int
    removed: int = 0
    by_match: Counter = field(default_factory=Counter)


class DecontaminateStep(Step):
    """Drops records overlapping a benchmark test item (reason ``contaminated``)."""

    name = "decontaminate"

    def __init__(self, benchmarks: Sequence[Benchmark], *, ngram: int = 13, min_ngram: int = 8,
                 min_exact_words: int = 4, fields: Sequence[str] = ("instruction", "input", "output"),
                 skipped: Sequence[str] = (), batch_size: int = 512) -> None:
        super().__init__()
        if min_ngram > ngram:
            raise RecipeError(["stages.dedup.decontamination: min_ngram must not exceed ngram"])
        self.ngram, self.min_ngram, self.min_exact_words = int(ngram), int(min_ngram), int(min_exact_words)
        self.fields = tuple(fields)
        self.batch_size = batch_size
        self.skipped = list(skipped)
        self.reports = [DecontaminationReport(b.name, b.origin, len(b.items)) for b in benchmarks]
        self._items: list[tuple[int, str]] = []  # (benchmark number, item id)
        self._build(benchmarks)

    def _build(self, benchmarks: Sequence[Benchmark]) -> None:
        texts, owners = [], []
        for bi, bench in enumerate(benchmarks):
            for item in bench.items:
                self._items.append((bi, item.id))
                for t in item.texts:
                    texts.append(normalize(t))
                    owners.append(len(self._items) - 1)
        owners_arr = np.asarray(owners, np.int64)
        # exact: whole benchmark texts long enough to be distinctive
        self._exact: dict[int, int] = {}
        for t, o in zip(texts, owners):
            if t and len(t.split()) >= self.min_exact_words:
                self._exact.setdefault(exact_hash(t), o)
        h, idx = hash_words(texts)
        lengths = np.bincount(idx, minlength=len(texts)) if len(idx) else np.zeros(len(texts), np.int64)
        self._indexes: dict[int, _NgramIndex] = {}
        grams, gidx = ngram_hashes(h, idx, self.ngram)
        self._indexes[self.ngram] = self._index(grams, owners_arr[gidx])
        # texts shorter than ngram but at least min_ngram words: the whole text, at its length
        for length in range(self.min_ngram, self.ngram):
            sel = np.flatnonzero(lengths == length)
            if len(sel) == 0:
                continue
            word_sel = np.isin(idx, sel)
            g, gi = ngram_hashes(h[word_sel], idx[word_sel], length)
            self._indexes[length] = self._index(g, owners_arr[gi])

    @staticmethod
    def _index(hashes: np.ndarray, owners: np.ndarray) -> _NgramIndex:
        order = np.argsort(hashes, kind="stable")
        hashes, owners = hashes[order], owners[order]
        first = np.r_[True, hashes[1:] != hashes[:-1]] if len(hashes) else np.zeros(0, bool)
        return _NgramIndex(hashes[first], owners[first])

    @property
    def n_items(self) -> int:
        return len(self._items)

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        for r in self.reports:
            r.removed, r.by_match = 0, Counter()
        batch: list[Record] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= self.batch_size:
                yield from self._run_batch(batch)
                batch = []
        if batch:
            yield from self._run_batch(batch)

    def _run_batch(self, batch: list[Record]) -> Iterator[Record]:
        hits = self.check_batch(batch)
        for rec, hit in zip(batch, hits):
            if hit is None:
                yield rec
                continue
            owner, match, n, overlap = hit
            bi, item_id = self._items[owner]
            report = self.reports[bi]
            report.removed += 1
            report.by_match[match] += 1
            details = {"benchmark": report.name, "benchmark_item": item_id, "match": match,
                       "similarity": overlap}
            if n:
                details["ngram"] = n
            self.drop(rec, "contaminated", **details)

    def check_batch(self, batch: Sequence[Record]) -> list[tuple[int, str, int, float] | None]:
        """Per record: None, or (item owner, 'exact'|'ngram', n, overlap fraction)."""
        result: list[tuple[int, str, int, float] | None] = [None] * len(batch)
        texts, text_rec = [], []
        for r, rec in enumerate(batch):
            parts = [normalize(record_text(rec, (f,))) for f in self.fields]
            for t in parts:
                if t:
                    texts.append(t)
                    text_rec.append(r)
            combos = parts + [" ".join(p for p in parts[:2] if p)]  # the user turn as a whole
            for t in combos:
                owner = self._exact.get(exact_hash(t)) if t else None
                if owner is not None:
                    result[r] = (owner, "exact", 0, 1.0)
                    break
        if not texts:
            return result
        text_rec_arr = np.asarray(text_rec, np.int64)
        h, idx = hash_words(texts)
        for n in sorted(self._indexes, reverse=True):
            grams, gidx = ngram_hashes(h, idx, n)
            if len(grams) == 0:
                continue
            owners = self._indexes[n].lookup(grams)
            hit = owners >= 0
            if not hit.any():
                continue
            totals = np.bincount(gidx, minlength=len(texts))
            found = np.bincount(gidx[hit], minlength=len(texts))
            for t in np.flatnonzero(found).tolist():
                r = int(text_rec_arr[t])
                if result[r] is None:
                    first = int(owners[np.flatnonzero(hit & (gidx == t))[0]])
                    result[r] = (first, "ngram", n, round(float(found[t] / totals[t]), 4))
        return result

    def summary(self) -> dict[str, Any]:
        return {"benchmarks": {r.name: {"items": r.items, "removed": r.removed, "origin": r.origin,
                                        "by_match": dict(r.by_match)} for r in self.reports},
                "skipped_absent": self.skipped,
                "settings": {"ngram": self.ngram, "min_ngram": self.min_ngram,
                             "min_exact_words": self.min_exact_words, "fields": list(self.fields)}}

    def card_section(self) -> str:
        lines = ["### Benchmark decontamination", "",
                 f"Records whose {', '.join(self.fields)} share a {self.ngram}-word sequence with a "
                 f"benchmark test item (or contain a whole shorter benchmark text of at least "
                 f"{self.min_ngram} words), or equal one after normalisation, were removed.", ""]
        if self.reports:
            lines += ["| benchmark | test items | records removed |", "|---|---|---|"]
            lines += [f"| {r.name} | {r.items} | {r.removed} |" for r in self.reports]
        if self.skipped:
            lines += ["", "Not checked (benchmark file absent): " + ", ".join(self.skipped) + "."]
        return "\n".join(lines) + "\n"
