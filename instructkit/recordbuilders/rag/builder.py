"""The ``rag`` builder: guideline-grounded instruction records with checked citations.

For each sampled chunk (or topic query) it retrieves the top-k passages and writes a record
in one of two answer modes (``answer_mode``):

- ``extractive``: the answer is made of sentences of the retrieved passages, word for word;
  the model writes only the question (and for ``guideline_adherence`` the short case), as a
  short few-shot task (``extractive.py``). Grounded by construction: the citations are the
  passages the sentences came from.
- ``abstractive``: the model writes question, answer and the labels of the passages that
  support it (structured output); the record is kept only if the citation check passes
  (``grounding``), else it goes to quarantine ``ungrounded``.
- ``auto`` (default): extractive on the embedded model and on models too small to write
  grounded prose (``instructkit.llm.capability``), abstractive otherwise.

In every mode the generated question is searched against the index and must find its seed
passage in the top k (round-trip consistency, Alberti et al. 2019), else the record is
quarantined ``roundtrip_failed``. LLM failures go to quarantine with the raw reply and
reason ``llm_error`` / ``llm_invalid_output``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit._exceptions import BudgetExceeded, RecipeError
from instructkit.recordbuilders.base import Builder
from instructkit.context import RunContext
from instructkit.records import Record, content_hash, make_record
from instructkit.recordbuilders.rag.chunking import ChunkSettings
from instructkit.recordbuilders.rag.documents import Document, all_phi_free, document_location, iter_documents
from instructkit.recordbuilders.rag.grounding import CitationChecker, GroundingResult
from instructkit.recordbuilders.rag.index import DEFAULT_RETRIEVAL, Hit, RagIndex
from instructkit.recordbuilders.rag.prompts import TASK_PROMPTS, RagPrompt, load_prompt

logger = logging.getLogger("instructkit")

__all__ = ["RagBuilder", "WorkItem", "ANSWER_MODES"]

TASKS = tuple(TASK_PROMPTS)
ANSWER_MODES = ("auto", "extractive", "abstractive")


@dataclass
class WorkItem:
    """One generation attempt: a task and what to retrieve for (a chunk or a topic query)."""

    n: int
    task: str
    chunk_id: str | None = None
    query: str | None = None
    #: how many times this chunk was sampled before (n larger than the chunks to sample)
    round: int = 0

    @property
    def key(self) -> str:
        base = self.chunk_id or "query-" + content_hash(self.query, length=16)
        return f"{base}#{self.round}" if self.round else base


class RagBuilder(Builder):
    """Builds ``guideline_qa``, ``recommendation_summary`` and ``guideline_adherence`` records."""

    name = "rag"
    method = "rag"

    def __init__(self, documents: Iterable[dict[str, Any]] = (), *, ctx: RunContext | None = None,
                 tasks: list[str] | dict[str, float] | None = None, n: int | None = None,
                 queries: list[str] | None = None, top_k: int = 4,
                 chunk_size: int = 1000, chunk_overlap: int = 150, index_type: str = "auto",
                 index_dir: str | Path | None = None, embedder: str | None = None,
                 retrieval: str | None = None, rerank_candidates: int | None = None,
                 support: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                 prompts: dict[str, str] | None = None, min_chunk_chars: int = 300,
                 include_passages: bool = False, batch_size: int = 4,
                 answer_mode: str = "auto", extractive: dict[str, Any] | None = None,
                 roundtrip: bool = True,
                 source_name: str | None = None, name: str | None = None,
                 index: RagIndex | None = None, llm: Any = None) -> None:
        super().__init__()
        if name:
            self.name = name
            self._named = True
        self.ctx = ctx or RunContext()
        self.document_specs = [dict(d) for d in documents]
        if not self.document_specs and index is None:
            raise RecipeError(["builders.rag.documents: give at least one documents entry "
                               "(or sources naming document files)"])
        self.tasks = self._check_tasks(tasks or ["guideline_qa"])
        self.queries = list(queries or [])
        self.n = n if n is not None else (len(self.queries) or 20)
        self.top_k = top_k
        self.chunking = ChunkSettings(chunk_size, chunk_overlap)
        self.index_type = index_type
        self.index_dir = Path(index_dir) if index_dir else None
        self.embedder_name = embedder
        self.retrieval = retrieval or DEFAULT_RETRIEVAL
        self.rerank_candidates = rerank_candidates
        sup = dict(support or {})
        # both: a sentence must be close in meaning (embedding) AND share most of its content
        # words with a cited passage; embedding alone lets fluent invented attributions through
        self.support_method = sup.get("method", "both")
        self.support_thresholds = {"embedding": float(sup.get("embedding_threshold", 0.65)),
                                   "lexical": float(sup.get("lexical_threshold", 0.5))}
        self.params = dict(params or {})
        self.prompt_ids = {t: (prompts or {}).get(t, TASK_PROMPTS[t]) for t in self.task_names}
        self.min_chunk_chars = min_chunk_chars
        self.include_passages = include_passages
        self.batch_size = max(1, batch_size)
        self.source_name = source_name or self.name
        if answer_mode not in ANSWER_MODES:
            raise RecipeError([f"builders.rag.answer_mode: one of {', '.join(ANSWER_MODES)}, not {answer_mode!r}"])
        self.answer_mode = answer_mode
        self.extractive_settings = dict(extractive or {})
        self.roundtrip = roundtrip
        self._mode: str | None = None
        self._extractive: Any = None
        self.roundtrip_ranks: Counter[int] = Counter()
        self._index = index
        self._llm = llm
        self._checker: CitationChecker | None = None
        self.used_docs: Counter[str] = Counter()
        self.index_report: dict[str, Any] | None = None
        self.model: str | None = None
        self.provider: str | None = None
        # fail on a bad prompt before any work is done
        self.prompts: dict[str, RagPrompt] = {t: load_prompt(p) for t, p in self.prompt_ids.items()}

    # -- configuration -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any], sources: dict[str, Any] | None,
                    ctx: RunContext) -> "RagBuilder":
        cfg = dict(config)
        docs = [dict(d) for d in cfg.get("documents", [])]
        docs += _documents_from_sources(cfg.get("sources", []), sources, ctx)
        source_name = cfg.get("source_name") or (cfg.get("sources") or [None])[0]
        keys = ("tasks", "n", "queries", "top_k", "chunk_size", "chunk_overlap", "index_type",
                "index_dir", "embedder", "retrieval", "rerank_candidates", "support", "params", "prompts", "min_chunk_chars",
                "include_passages", "batch_size", "name", "answer_mode", "extractive", "roundtrip")
        kwargs = {k: cfg[k] for k in keys if k in cfg}
        if kwargs.get("index_dir"):
            from instructkit.recipe.paths import checked_path

            # a folder the build writes: inside the allowed ones, and never a user's folder
            kwargs["index_dir"] = checked_path(str(kwargs["index_dir"]), ctx, "index_dir", "write")
        return cls(docs, ctx=ctx, source_name=source_name, **kwargs)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    @staticmethod
    def _check_tasks(tasks: list[str] | dict[str, float]) -> dict[str, float]:
        weights = {t: 1.0 for t in tasks} if isinstance(tasks, list) else dict(tasks)
        bad = [t for t in weights if t not in TASKS]
        if bad:
            raise RecipeError([f"builders.rag.tasks: unknown task(s) {', '.join(bad)} "
                               f"(one of {', '.join(TASKS)})"])
        return weights

    # -- shared heavy parts --------------------------------------------------------------
    @property
    def embedder(self) -> Any:
        from instructkit.embeddings import embedder_from_context

        return embedder_from_context(self.ctx, model=self.embedder_name)

    @property
    def index(self) -> RagIndex:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def _build_index(self) -> RagIndex:
        from instructkit.embeddings import EmbedderSettings, embedder_from_context
        from instructkit.recordbuilders.rag.rerank import index_embedders

        docs = iter_documents(self.document_specs, ctx=self.ctx)
        if all_phi_free(self.document_specs) and hasattr(self.ctx, "phi_free_copies"):
            self.ctx.phi_free_copies.add(self.source_name)
        # two_stage: the index holds static vectors; the run's embedder re-ranks candidates
        emb, reranker, retrieval = index_embedders(
            self.embedder, self.retrieval,
            lambda: embedder_from_context(self.ctx, model=self.embedder_name, backend="static"))
        key = content_hash(sorted(d.doc_id for d in docs), self.chunking.size,
                           self.chunking.overlap, emb.key if hasattr(emb, "key") else self.embedder_name,
                           length=16)
        folder = self.index_dir or (Path(self.ctx.cache_dir) / "rag" / key if self.ctx.cache_dir else None)

        def make() -> RagIndex:
            cache = None
            if reranker is not None and EmbedderSettings.from_config(
                    (self.ctx.recipe or {}).get("embedder")).cache_vectors:
                from instructkit.vector_cache import VectorCache

                cache = VectorCache.for_embedder(reranker, self.ctx.cache_dir)
            kw = dict(retrieval=retrieval, reranker=reranker, candidates=self.rerank_candidates,
                      rerank_cache=cache)
            if folder and RagIndex.exists(folder):
                idx = RagIndex.open(folder, emb, settings=self.chunking, index_type=self.index_type, **kw)
            else:
                idx = RagIndex(emb, self.chunking, self.index_type, folder, **kw)
            report = idx.update(docs, prune=True, quiet=self.ctx.quiet)
            if folder:
                from instructkit.recipe.paths import mark_owned_folder

                idx.save(folder)
                mark_owned_folder(folder)
            idx.last_report = report  # type: ignore[attr-defined]
            return idx

        # builders over the same corpus in one run share one index (and its re-ranker vectors)
        idx = self.ctx.shared(f"rag-index:{folder or key}:{retrieval}", make, close=lambda i: i.close())
        self.index_report = getattr(idx, "last_report", None).as_dict() if hasattr(idx, "last_report") else None
        return idx

    @property
    def llm(self) -> Any:
        if self._llm is None:
            from instructkit.llm import llm_from_context

            self._llm = llm_from_context(self.ctx)
        return self._llm

    @property
    def checker(self) -> CitationChecker:
        if self._checker is None:
            self._checker = CitationChecker(
                None if self.support_method == "lexical" else self.embedder,
                method=self.support_method,
                embedding_threshold=self.support_thresholds["embedding"],
                lexical_threshold=self.support_thresholds["lexical"])
        return self._checker

    @property
    def mode(self) -> str:
        """The answer mode in force: ``auto`` resolved against the run's model."""
        if self._mode is None:
            if self.answer_mode != "auto":
                self._mode = self.answer_mode
            else:
                from instructkit.llm.capability import is_small_model

                self._mode = "extractive" if is_small_model(self.llm) else "abstractive"
        return self._mode

    @property
    def extractive(self) -> Any:
        if self._extractive is None:
            from instructkit.recordbuilders.rag.extractive import SELECT_MODES, ExtractiveAnswers

            cfg = dict(self.extractive_settings)
            if cfg.get("select", "similarity") not in SELECT_MODES:
                raise RecipeError([f"builders.rag.extractive.select: one of {', '.join(SELECT_MODES)}"])
            self._extractive = ExtractiveAnswers(self, **cfg)
        return self._extractive

    # -- what to build from ----------------------------------------------------------------
    def inputs(self) -> Iterator[WorkItem]:
        rng = random.Random(self.ctx.seed)
        tasks, weights = list(self.tasks), list(self.tasks.values())
        if self.queries:
            for i in range(self.n):
                yield WorkItem(i, self._pick(rng, tasks, weights, i), query=self.queries[i % len(self.queries)])
            return
        eligible = [c.chunk_id for c in self.index.chunks if len(c.text) >= self.min_chunk_chars]
        if not eligible:  # a small corpus of short documents: take what there is
            eligible = [c.chunk_id for c in self.index.chunks]
        if not eligible:
            return
        rng.shuffle(eligible)
        # more attempts than chunks: go round again (each round focuses on other sentences)
        for i in range(self.n):
            yield WorkItem(i, self._pick(rng, tasks, weights, i), chunk_id=eligible[i % len(eligible)],
                           round=i // len(eligible))

    @staticmethod
    def _pick(rng: random.Random, tasks: list[str], weights: list[float], i: int) -> str:
        if len(set(weights)) == 1:
            return tasks[i % len(tasks)]  # equal weights: rotate, so every task is represented
        return rng.choices(tasks, weights)[0]

    # -- building ------------------------------------------------------------------------
    def process(self, inputs: Iterable[WorkItem]) -> Iterator[Record]:
        batch: list[WorkItem] = []
        size = min(self.batch_size, self.ctx.limit) if self.ctx.limit else self.batch_size
        for item in inputs:
            batch.append(item)
            if len(batch) >= size:
                yield from self._build_batch(batch)
                batch = []
        if batch:
            yield from self._build_batch(batch)

    def _retrieve(self, items: list[WorkItem]) -> list[list[Hit]]:
        idx = self.index
        out: list[list[Hit] | None] = [None] * len(items)
        by_chunk = [i for i, it in enumerate(items) if it.chunk_id]
        by_query = [i for i, it in enumerate(items) if not it.chunk_id]
        if by_chunk:
            for i, hits in zip(by_chunk, idx.neighbours([items[i].chunk_id for i in by_chunk], self.top_k)):
                seed = items[i].chunk_id
                if all(h.chunk.chunk_id != seed for h in hits):  # keep the seed passage in view
                    hits = [Hit(1, 1.0, idx.chunk(seed)), *hits[: self.top_k - 1]]
                # the seed passage first: it is the one the prompt focuses on
                hits.sort(key=lambda h: h.chunk.chunk_id != seed)
                out[i] = hits
        if by_query:
            for i, hits in zip(by_query, idx.search_many([items[i].query for i in by_query], self.top_k)):
                out[i] = hits
        return out  # type: ignore[return-value]

    def _build_batch(self, items: list[WorkItem]) -> Iterator[Record]:
        hits_per_item = self._retrieve(items)
        if self.mode == "extractive":
            seeds = [(self.index.chunk(it.chunk_id) if it.chunk_id else (hits[0].chunk if hits else None))
                     for it, hits in zip(items, hits_per_item)]
            yield from self.extractive.build_batch(items, seeds)
            return
        from instructkit.recordbuilders.rag.abstractive import abstractive_batch

        yield from abstractive_batch(self, items, hits_per_item)

    # -- the LLM, and the one place where source text becomes a request ------------------------
    def source_request(self, prompt: Any, *, seed: int, params: dict[str, Any],
                       schema: dict[str, Any] | None = None, **texts: Any) -> Any:
        """The request for ``prompt`` filled with ``texts`` (passages, sentences: source
        text). Every request this builder sends is made here, so whatever must happen to
        source text before a model sees it (anonymization, issue 12) happens in one place."""
        from instructkit.llm import ChatRequest, JsonRequest

        messages = prompt.messages(**texts)
        pid, phash = prompt.id, prompt.hash
        if schema is None:
            return ChatRequest(messages=messages, params=dict(params), seed=seed, prompt_id=pid,
                               prompt_hash=phash)
        return JsonRequest(messages=messages, schema=schema, params=dict(params), seed=seed,
                           prompt_id=pid, prompt_hash=phash)

    def ask(self, requests: list[Any], *, json: bool) -> tuple[list[Any], BudgetExceeded | None]:
        """Answers in order; after a request cap, None for what was not answered and the
        exception to raise once the answered ones are built."""
        if not requests:
            return [], None
        try:
            results = (self.llm.complete_json_many if json else self.llm.chat_many)(requests)
            return list(results), None
        except BudgetExceeded as exc:
            done = list(getattr(exc, "results", None) or [])
            return done + [None] * (len(requests) - len(done)), exc

    def request_seed(self, item: WorkItem) -> int:
        return _request_seed(self.ctx.seed, item.key, item.task)

    @staticmethod
    def where(item: WorkItem, prompt_id: str) -> dict[str, Any]:
        return {"task": item.task, "item": item.n, "chunk_id": item.chunk_id, "prompt_id": prompt_id}

    # -- one record, whatever the mode -----------------------------------------------------------
    def finish_record(self, item: WorkItem, prompt: RagPrompt, hits: list[Hit], data: dict[str, Any],
                      grounding: GroundingResult, *, seed: int, params: dict[str, Any],
                      model: str | None, provider: str | None, support: dict[str, Any],
                      extra_meta: dict[str, Any] | None = None,
                      passage_labels: dict[str, str] | None = None,
                      params_sent: dict[str, Any] | None = None,
                      gen_prompt: tuple[str, str] | None = None) -> Record | None:
        """The record for ``data`` (the task's fields: question/topic/case and the answer),
        or None after quarantining it (empty fields, citation check failed)."""
        where = self.where(item, prompt.id)
        self.model = model or self.model
        self.provider = provider or self.provider
        seed_chunk = hits[0].chunk if item.chunk_id is None else self.index.chunk(item.chunk_id)
        doc = self.index.documents.get(seed_chunk.doc_id)
        labels = passage_labels or {f"P{j + 1}": h.chunk.chunk_id for j, h in enumerate(hits)}
        shown = set(labels.values())
        fields = prompt.record_fields(data, {"title": seed_chunk.title or "", "topic_query": item.query or ""})
        if self.include_passages:
            text = "\n\n".join(f"[{lab}] {self.index.chunk(cid).text}" for lab, cid in labels.items())
            fields["input"] = (fields["input"] + "\n\n" if fields["input"] else "") + "Passages:\n" + text
        if not fields.get("instruction", "").strip() or not fields.get("output", "").strip():
            self.drop(None, "llm_invalid_output", source=where, error="empty instruction or answer")
            return None
        cited_docs = [self.index.documents[self.index.chunk(c).doc_id] for c in grounding.cited if c in shown]
        licenses = sorted({d.license for d in ([doc] if doc else []) + cited_docs})
        context = [{"chunk_id": h.chunk.chunk_id, "doc_id": h.chunk.doc_id, "text": h.chunk.text,
                    "title": h.chunk.title, "url": h.chunk.url, "section": h.chunk.section,
                    "start": h.chunk.start, "end": h.chunk.end, "score": round(h.score, 4)}
                   for h in hits]
        prov = {"builder": "rag", "builder_name": self.name, "seed": seed,
                "prompt_id": prompt.id, "prompt_hash": prompt.hash, "model": model, "provider": provider,
                "params": dict(params_sent or params), "chunk_ids": [h.chunk.chunk_id for h in hits]}
        if gen_prompt is not None:  # the prompt that wrote the text (extractive: few-shot task)
            prov["prompt_chain"] = [{"prompt_id": gen_prompt[0], "prompt_hash": gen_prompt[1]}]
        rec = make_record(
            task=item.task, method="rag", instruction=fields["instruction"],
            input=fields.get("input", ""), output=fields["output"],
            source={"name": self.source_name,
                    "license": " AND ".join(licenses) if licenses else "unknown",
                    "record_id": f"{item.key}:{item.task}",
                    "url": seed_chunk.url,
                    "location": document_location(doc, seed_chunk.start, seed_chunk.end) if doc else None,
                    "citation": _citation(doc) if doc else None},
            provenance=prov,
            context=context,
            meta={"cited_chunk_ids": grounding.cited,
                  "passage_labels": labels,
                  "retrieval": {"k": self.top_k, "query": item.query, "seed_chunk_id": item.chunk_id,
                                "embedder": self.index.model, "backend": self.index.backend,
                                **self._retrieval_meta(item)},
                  "support": support,
                  **(extra_meta or {}),
                  "documents": [{"doc_id": d.doc_id, "title": d.title, "date": d.date, "url": d.url}
                                for d in _unique_docs(cited_docs)]})
        if not grounding.ok:
            self.drop(rec, "ungrounded", problem=grounding.problem,
                      not_retrieved=grounding.not_retrieved,
                      unsupported=[s["index"] for s in grounding.sentences if not s["supported"]])
            return None
        rt = (extra_meta or {}).get("answer", {}).get("roundtrip")
        if rt:
            self.roundtrip_ranks[rt["rank"]] += 1
        for d in _unique_docs(cited_docs):
            self.used_docs[d.doc_id] += 1
        return rec

    def _retrieval_meta(self, item: WorkItem) -> dict[str, Any]:
        idx = self.index
        two_stage = idx.retrieval == "two_stage" and idx.reranker is not None
        out: dict[str, Any] = {"mode": idx.retrieval if item.query or two_stage else "dense"}
        if two_stage:
            out.update(reranker_backend=idx.reranker.backend, candidates=idx.candidates)
        return out

    # -- reporting -------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompts": {p.id: p.hash for p in self.prompts.values()},
                               "documents_used": len(self.used_docs),
                               "support": {"method": self.support_method, **self.support_thresholds}}
        if self.model:
            out.update(model=self.model, provider=self.provider)
        if self._index is not None:
            idx = self._index
            out.update(documents_indexed=len(idx.documents), chunks=len(idx),
                       embedder=idx.model, embedder_backend=idx.backend,
                       retrieval=idx.retrieval, index_type=idx.built_index_type)
            if idx.rerank_vectors is not None:
                # a label, not a number: numbers add up across workers
                out["reranker"] = f"{idx.reranker.name} ({idx.reranker.backend}), top {idx.candidates}"
                out["rerank_chunks_embedded"] = idx.rerank_vectors.embedded
                out["rerank_chunks_reused"] = idx.rerank_vectors.reused
        if self.index_report:
            out["index_update"] = self.index_report
        if self._mode is not None:
            out["answer_mode"] = {"configured": self.answer_mode, "used": self._mode}
            if self._mode == "extractive" and self._extractive is not None:
                out["extractive"] = {"select": self._extractive.select, "prompts": self._extractive.prompt_ids}
        out["roundtrip"] = {"enabled": self.roundtrip, "k": self.top_k,
                            "failed": self.stats.dropped.get("roundtrip_failed", 0),
                            "rank_of_source": {str(k): v for k, v in sorted(self.roundtrip_ranks.items())}}
        return out

    def card_section(self, stats: Any) -> str | None:
        """Markdown for the card (rendered as a list item: continuation lines are indented)."""
        th = self.support_thresholds
        rule = {"embedding": f"embedding similarity >= {th['embedding']}",
                "lexical": f"lexical support >= {th['lexical']}",
                "either": f"embedding similarity >= {th['embedding']} or lexical support >= {th['lexical']}",
                "both": f"embedding similarity >= {th['embedding']} and lexical support >= {th['lexical']}",
                }[self.support_method]
        ungrounded = stats.dropped.get("ungrounded", 0)
        other = sum(stats.dropped.values()) - ungrounded
        head = f"**`{self.name}`** (rag): "
        if self._index is not None:
            idx = self._index
            head += (f"retrieval over {len(idx.documents)} guideline documents ({len(idx)} chunks of "
                     f"up to {self.chunking.size} characters, overlap {self.chunking.overlap}), "
                     f"embedder `{idx.model}` ({idx.backend} backend), FAISS `{idx.built_index_type}` "
                     f"index, top-{self.top_k} passages per item"
                     + (f", the top {idx.candidates} candidates re-ranked by `{idx.reranker.name}` "
                        f"({idx.reranker.backend} backend)" if idx.rerank_vectors is not None else "")
                     + (f" ({idx.retrieval} retrieval for topic queries). " if self.queries else ". "))
        failed_rt = stats.dropped.get("roundtrip_failed", 0)
        other -= failed_rt
        if self._mode == "extractive":
            why = (" (chosen automatically: the model is too small to write grounded answers)"
                   if self.answer_mode == "auto" else "")
            head += (f"Answers are **extractive**{why}: sentences of the retrieved passages, word for word "
                     f"(up to line wrapping), chosen by {self.extractive.select}; the model wrote only the "
                     f"questions and cases. The citations are the passages those sentences came from; "
                     f"{ungrounded} answers failed the verbatim check")
        else:
            head += (f"Answers are **abstractive** (written by the model). Citation check: every cited "
                     f"passage must have been retrieved and every answer sentence supported by a cited "
                     f"passage ({rule}); {ungrounded} ungrounded answers")
        head += (f". Round-trip check: each question, searched against the index, must find its source "
                 f"passage in the top {self.top_k}; {failed_rt} failed. {other} other failures went to "
                 f"quarantine." if self.roundtrip else f"; {other} other failures went to quarantine.")
        lines = [head]
        if self.used_docs and self._index is not None:
            lines += ["", "  Guideline documents cited by the records:", "",
                      "  | document | date | source | license | records |", "  |---|---|---|---|---|"]
            for doc_id, n in self.used_docs.most_common():
                d = self._index.documents[doc_id]
                title = (d.title or doc_id).replace("|", "\\|")
                lines.append(f"  | {title} | {d.date or 'n/a'} | {d.url or d.path or ''} | {d.license} | {n} |")
        return "\n".join(lines) + "\n"


def _documents_from_sources(names: list[str], sources: dict[str, Any] | None,
                             ctx: RunContext) -> list[dict[str, Any]]:
    """Recipe sources named by the builder: their path, format and license describe documents."""
    declared = {s.get("name"): s for s in (ctx.recipe or {}).get("sources", []) if isinstance(s, dict)}
    out = []
    for i, name in enumerate(names):
        spec = declared.get(name)
        if spec is None and sources and name in sources:
            src = sources[name]
            spec = {k: getattr(src, k, None) for k in ("path", "license", "type", "limit")}
            spec["path"] = str(spec["path"]) if spec["path"] else None
        if not spec or not spec.get("path"):
            raise RecipeError([f"builders.rag.sources.{i}: source '{name}' has no path to documents"])
        entry = {"path": spec["path"], "license": spec.get("license", "unknown"),
                 "phi": spec.get("phi", getattr(sources.get(name) if sources else None, "phi", True))}
        if spec.get("type") == "json":
            entry["format"] = "json_url_text"
        if spec.get("limit"):
            entry["limit"] = spec["limit"]
        out.append(entry)
    return out


def _request_seed(run_seed: int, key: str, task: str) -> int:
    """A seed per generation, derived from the run seed and what is generated (reproducible)."""
    return int(content_hash(run_seed, key, task, length=8), 16) % (2**31)


def _citation(doc: Document) -> str:
    return f"{doc.title}" + (f" ({doc.date})" if doc.date else "") + (f". {doc.url}" if doc.url else "")


def _unique_docs(docs: list[Document]) -> list[Document]:
    seen, out = set(), []
    for d in docs:
        if d.doc_id not in seen:
            seen.add(d.doc_id)
            out.append(d)
    return out
