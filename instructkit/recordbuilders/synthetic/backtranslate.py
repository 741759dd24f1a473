"""Instruction back-translation (Li et al. 2023): real answer text, model-written request.

The output of every record is text from a licensed source, unchanged apart from folding
line wrapping: MedQuAD answers, PubMedQA long answers, guideline passages (any recipe
source with a text field, or documents chunked as the rag builder chunks them). The model
writes only the question the text answers (``prompts/synthetic/backtranslate.yaml``, a
short few-shot task). Self-curation, without asking the model to grade itself (a 135M
model's grades carry no information):

- the question names something in the text and no worked example's words
  (``off_topic`` / ``copies_example``);
- relevance: the embedding cosine of question and text is at least ``min_relevance``
  (``low_relevance``);
- round trip: searched among the candidate texts (the sampled ones plus up to ``pool``
  others of the same sources), the question finds its own text in the top ``roundtrip_k``
  (``roundtrip_failed``).

The record keeps the source's licence, record id, location and citation.
"""

from __future__ import annotations

import dataclasses

import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from instructkit._exceptions import RecipeError
from instructkit.llm.fewshot import clean_line, clean_question, content_words, load_fewshot
from instructkit.records import Record, make_record

if TYPE_CHECKING:  # pragma: no cover
    from instructkit.recordbuilders.synthetic.builder import SyntheticBuilder

logger = logging.getLogger("instructkit")

__all__ = ["BacktranslateConfig", "Backtranslation", "SourceText"]

#: fields read, in this order, when a source names no ``text_field``
TEXT_FIELDS = ("answer", "LONG_ANSWER", "long_answer", "text", "output", "passage")
_IMPERATIVE = ("explain", "describe", "list", "summarise", "summarize", "give", "tell", "define",
               "outline", "compare")
_GENERIC = frozenset(content_words("""what how when why which who does can should treated treatment
mean means body people patients person best way ways help helps prevent protect protection home safe
recommended common cause causes reduce risk work works start started stop medical medicine
medicines usually time times week weeks day days year years"""))
_PARA = re.compile(r"\n\s*\n")


@dataclass
class BacktranslateConfig:
    n: int = 8
    sources: list[str] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    text_field: str | None = None
    task: str = "backtranslated_qa"
    min_words: int = 20
    max_words: int = 220
    min_relevance: float = 0.3
    roundtrip_k: int = 3
    pool: int = 200
    chunk_size: int = 800
    prompts: str = "synthetic/backtranslate"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceText:
    """A piece of source text that can be an answer, and where it came from."""

    text: str
    source: dict[str, Any]


@dataclass
class _Attempt:
    index: int
    item: SourceText
    seed: int
    request: Any = None
    instruction: str = ""
    model: str | None = None
    provider: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


class Backtranslation:
    """The ``backtranslate`` mode of a ``SyntheticBuilder`` (see the module docstring)."""

    def __init__(self, builder: "SyntheticBuilder", cfg: BacktranslateConfig,
                 sources: dict[str, Any] | None) -> None:
        self.b = builder
        self.cfg = cfg
        self.sources = dict(sources or {})
        missing = [s for s in cfg.sources if s not in self.sources]
        if missing:
            raise RecipeError([f"builders.synthetic.backtranslate.sources: no recipe source named "
                               f"{', '.join(missing)}"])
        if not cfg.sources and not cfg.documents:
            raise RecipeError(["builders.synthetic.backtranslate: name `sources` or `documents` "
                               "that hold the answer texts"])
        self.prompts = load_fewshot(cfg.prompts)
        self.prompt = self.prompts["instruction"]
        self._example_words = set()
        for ex in self.prompt.examples:
            for v in ex.values():
                self._example_words |= content_words(str(v))
        self._example_words -= _GENERIC
        self.attempts = 0
        self.made = 0

    # -- the texts -------------------------------------------------------------------------------
    def texts(self) -> list[SourceText]:
        """Every candidate text of the configured sources and documents, in source order."""
        from instructkit.steps.anonymize.guard import phi_guard

        out: list[SourceText] = []
        for name in self.cfg.sources:
            src = self.sources[name]
            found: list[SourceText] = []
            for row in src.rows():
                if row.error:
                    self.b.drop(None, row.reason or "unreadable_row", source=src.record_source(row),
                                error=row.error)
                    continue
                raw = self._field(row.data)
                text = self._trim(raw) if raw else None
                if text:
                    found.append(SourceText(text, src.record_source(row)))
            if found and src.phi:  # anonymized before the model or any record sees them
                clean = phi_guard(self.b.ctx).scrub_many([t.text for t in found])
                found = [dataclasses.replace(t, text=c) for t, c in zip(found, clean)]
            out += found
        if self.cfg.documents:
            out += self._document_texts()
        return out

    def _field(self, data: dict[str, Any]) -> str | None:
        keys = [self.cfg.text_field] if self.cfg.text_field else TEXT_FIELDS
        for k in keys:
            v = data.get(k)
            if isinstance(v, str) and v.strip():
                return v
        return None

    def _trim(self, text: str) -> str | None:
        """Whole paragraphs from the start, at most ``max_words`` words (a long answer is
        cut at a paragraph or sentence end, never mid-sentence); None when too short."""
        from instructkit.recordbuilders.rag.sentences import fold_space, passage_sentences

        out: list[str] = []
        n = 0
        for para in _PARA.split(text.strip()):
            words = len(para.split())
            if n + words <= self.cfg.max_words:
                out.append(fold_space(para))
                n += words
                continue
            if not out:  # a long first paragraph: whole sentences from its start
                for s in passage_sentences("", para, min_words=1, max_words=10_000):
                    if n + s.words > self.cfg.max_words:
                        break
                    out.append(s.text)
                    n += s.words
            break
        joined = "\n\n".join(out) if len(out) > 1 and all(len(p.split()) > 3 for p in out) else " ".join(out)
        return joined if n >= self.cfg.min_words else None

    def _document_texts(self) -> list[SourceText]:
        from instructkit.recordbuilders.rag.chunking import ChunkSettings, chunk_document
        from instructkit.recordbuilders.rag.documents import all_phi_free, document_location, iter_documents
        from instructkit.recordbuilders.rag.sentences import passage_sentences

        out = []
        if all_phi_free(self.cfg.documents) and hasattr(self.b.ctx, "phi_free_copies"):
            self.b.ctx.phi_free_copies.add(self.b.name)
        for doc in iter_documents(self.cfg.documents, ctx=self.b.ctx):
            for ch in chunk_document(doc, ChunkSettings(self.cfg.chunk_size, 0)):
                sents = passage_sentences(ch.chunk_id, ch.text)
                text = " ".join(s.text for s in sents)
                if len(text.split()) < self.cfg.min_words:
                    continue
                out.append(SourceText(text, {
                    "name": self.b.name, "license": doc.license, "record_id": ch.chunk_id,
                    "url": doc.url, "location": document_location(doc, ch.start, ch.end),
                    "citation": f"{doc.title}" + (f" ({doc.date})" if doc.date else "")}))
        return out

    # -- building --------------------------------------------------------------------------------
    def run(self) -> Iterator[Record]:
        cfg = self.cfg
        texts = self.texts()
        if not texts:
            logger.warning("backtranslate: no source text of %d to %d words", cfg.min_words, cfg.max_words)
            return
        order = list(range(len(texts)))
        random.Random(f"{self.b.run_seed}:{self.b.name}:backtranslate").shuffle(order)
        chosen = order[: cfg.n]
        pool = order[: max(cfg.n, min(len(order), cfg.pool))]
        self._pool = [texts[i] for i in pool]
        self._pool_vecs = None
        params = {**self.prompt.params, **self.b.params_override, **cfg.params}
        for start in range(0, len(chosen), self.b.batch_size):
            if self.b.stopped:
                break
            batch = [_Attempt(start + j, texts[i], seed=self.b.derive_seed("backtranslate", start + j))
                     for j, i in enumerate(chosen[start:start + self.b.batch_size])]
            self.attempts += len(batch)
            for a in batch:
                a.request = self.b.source_request(self.prompt, params, a.seed, text=a.item.text, rotate=a.seed)
            answered = []
            for a, res in zip(batch, self.b.ask_chat([a.request for a in batch])):
                if res is None:
                    self._drop(a, "budget_exceeded")
                    continue
                if not res.ok:
                    self._drop(a, "llm_request_failed", error=res.error)
                    continue
                a.model, a.provider = res.model, res.provider
                a.params = {k: v for k, v in res.params.items() if k != "seed"}
                problem = self._parse(a, res.text)
                if problem:
                    self._drop(a, problem, raw=res.text)
                    continue
                answered.append(a)
            yield from self._curate(answered)

    def _parse(self, a: _Attempt, reply: str) -> str | None:
        q = clean_question(reply)
        if q is None:
            line = clean_line(reply, min_words=3, max_words=40)
            if line and line.split()[0].lower() in _IMPERATIVE:
                q = line.rstrip(".") + "."
        if not q:
            return "invalid_llm_output"
        a.instruction = q
        mine = content_words(q)
        source = content_words(a.item.text)
        if not mine & source:
            return "off_topic"
        if (mine & self._example_words) - source:
            return "copies_example"
        return None

    def _curate(self, attempts: list[_Attempt]) -> Iterator[Record]:
        if not attempts:
            return
        emb = self.b.embedder
        if self._pool_vecs is None:
            self._pool_vecs = emb.embed([t.text for t in self._pool])
        pool_index = {id(t): i for i, t in enumerate(self._pool)}
        qv = emb.embed([a.instruction for a in attempts])
        for a, v in zip(attempts, qv):
            sims = self._pool_vecs @ v
            own = pool_index[id(a.item)]
            relevance = float(sims[own])
            if relevance < self.cfg.min_relevance:
                self._drop(a, "low_relevance", instruction=a.instruction, cosine=round(relevance, 4),
                           min=self.cfg.min_relevance)
                continue
            rank = int((sims > relevance).sum()) + 1
            if rank > self.cfg.roundtrip_k:
                self._drop(a, "roundtrip_failed", instruction=a.instruction, rank=rank,
                           k=self.cfg.roundtrip_k, pool=len(self._pool))
                continue
            self.made += 1
            yield self._record(a, relevance, rank)

    def _record(self, a: _Attempt, relevance: float, rank: int) -> Record:
        prov = {"builder": "synthetic", "builder_name": self.b.name, "seed": self.b.run_seed,
                "prompt_id": self.prompt.id, "prompt_hash": self.prompt.hash,
                "model": a.model, "provider": a.provider, "params": a.params,
                "request_seeds": {"instruction": a.seed}}
        meta = {"synthetic": {"method": "backtranslate", "relevance": round(relevance, 4),
                              "roundtrip": {"rank": rank, "k": self.cfg.roundtrip_k, "pool": len(self._pool)},
                              "output_from_source": True}}
        return make_record(task=self.cfg.task, method="synthetic", instruction=a.instruction, input="",
                           output=a.item.text, source=dict(a.item.source), provenance=prov, meta=meta)

    def _drop(self, a: _Attempt, reason: str, **details: Any) -> None:
        self.b.drop(None, reason, method="backtranslate", attempt=f"backtranslate/{a.index:05d}",
                    source=dict(a.item.source), **details)

    def card_line(self) -> str:
        names = ", ".join([f"`{s}`" for s in self.cfg.sources]
                          + [f"documents `{d.get('path')}`" for d in self.cfg.documents])
        return (f"- **Back-translation** (Li et al. 2023; {self.made} of {self.cfg.n} requested, "
                f"{self.attempts} attempts): the output of each record is real text from {names}, with "
                f"its licence and citation; the model wrote only the question it answers (few-shot prompt "
                f"`{self.prompt.id}`, hash `{self.prompt.hash}`). Kept only when the question names the text, "
                f"its embedding cosine to the text is at least {self.cfg.min_relevance}, and, searched among "
                f"{min(self.cfg.pool, max(self.cfg.n, 1))} candidate texts, it finds its own text in the "
                f"top {self.cfg.roundtrip_k}.")
