"""Extractive answers (``answer_mode: extractive``): grounded by construction.

For each work item one sentence of the seed passage is the *focus*; the model writes only
what needs words -- the question it answers (``guideline_qa``), the topic of the passage
(``recommendation_summary``) or a short invented case and its question
(``guideline_adherence``) -- as one short few-shot task (``prompts/rag/extractive.yaml``).
What it wrote is checked (a question with a question mark, naming something of the
passage, not an example's words), then searched against the index: the seed passage must
come back in the top k (round-trip consistency, Alberti et al. 2019), else the record is
quarantined ``roundtrip_failed``. The answer is made of sentences of the retrieved
passages, taken word for word: chosen by embedding similarity to the question
(``select: similarity``) or by the model, by number (``select: model``). The citations are
the passages those sentences came from, so every answer sentence is in its cited passage.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from instructkit.llm.fewshot import clean_line, clean_question, content_words, load_fewshot
from instructkit.recordbuilders.rag.grounding import GroundingResult
from instructkit.recordbuilders.rag.index import Hit
from instructkit.recordbuilders.rag.sentences import Sentence, is_verbatim, passage_sentences
from instructkit.records import Record

if TYPE_CHECKING:  # pragma: no cover
    from instructkit.recordbuilders.rag.builder import RagBuilder, WorkItem

__all__ = ["ExtractiveAnswers", "SELECT_MODES"]

SELECT_MODES = ("similarity", "model")
_PROMPT_OF_TASK = {"guideline_qa": "question", "recommendation_summary": "topic",
                   "guideline_adherence": "case"}
# words any case or question may use without having taken them from a worked example
_GENERIC = frozenset(content_words("""patient patients year years old month months week weeks day days
man woman girl boy child children adult adults comes came review yearly visit clinic treatment treated
treat should done question first recommended recommend guideline managed management preferred often
receive given last dose people person take taken ask asks asked"""))
_AGE = re.compile(r"\b(\d{1,3})[- ](?:year|yr)s?[- ]old\b", re.IGNORECASE)
_QUESTION_SPLIT = re.compile(r"\n?\s*\bquestion\s*:\s*", re.IGNORECASE)


@dataclass
class _Plan:
    item: "WorkItem"
    seed: Any  # Chunk
    focus: Sentence
    kind: str
    request_seed: int
    params: dict[str, Any]
    request: Any = None
    reply: str = ""
    model: str | None = None
    provider: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    query: str = ""
    qvec: Any = None


class ExtractiveAnswers:
    """The extractive mode of a ``RagBuilder`` (see the module docstring)."""

    def __init__(self, builder: "RagBuilder", *, select: str = "similarity", max_sentences: int = 3,
                 min_similarity: float = 0.35, margin: float = 0.08,
                 prompts: str = "rag/extractive") -> None:
        self.b = builder
        self.select = select
        self.max_sentences = max(1, int(max_sentences))
        self.min_similarity = float(min_similarity)
        self.margin = float(margin)
        self.prompts = load_fewshot(prompts)
        self._split: dict[str, list[Sentence]] = {}
        self._vecs: dict[str, Any] = {}
        self._example_words = {k: self._words_of_examples(p) for k, p in self.prompts.prompts.items()}

    @staticmethod
    def _words_of_examples(prompt) -> set[str]:
        words: set[str] = set()
        for ex in prompt.examples:
            for v in ex.values():
                words |= content_words(str(v))
        return words - _GENERIC

    @property
    def prompt_ids(self) -> dict[str, str]:
        return {p.id: p.hash for p in self.prompts.prompts.values()}

    # -- sentences ----------------------------------------------------------------------------
    def sentences(self, chunk) -> list[Sentence]:
        """The answerable sentences of a chunk (cached per chunk)."""
        got = self._split.get(chunk.chunk_id)
        if got is None:
            got = self._split[chunk.chunk_id] = passage_sentences(chunk.chunk_id, chunk.text)
        return got

    def _prepare(self, chunks) -> None:
        """Embed the sentences of every chunk not embedded yet, in one call (the embedder's
        cost is mostly per call on a busy CPU, not per sentence)."""
        todo = {c.chunk_id: self.sentences(c) for c in chunks if c.chunk_id not in self._vecs}
        texts = [s.text for sents in todo.values() for s in sents]
        vecs = self.b.embedder.embed(texts) if texts else None
        i = 0
        for cid, sents in todo.items():
            self._vecs[cid] = vecs[i:i + len(sents)] if sents else None
            i += len(sents)

    def _focus(self, item: "WorkItem", sents: list[Sentence]) -> Sentence:
        pool = sents
        if item.task != "guideline_qa":
            pool = [s for s in sents if s.recommends] or sents
        rng = random.Random(f"{self.b.ctx.seed}:{item.key}:{item.task}")
        return pool[(rng.randrange(len(pool)) + item.round) % len(pool)]

    # -- one batch ------------------------------------------------------------------------------
    def build_batch(self, items: list["WorkItem"], seeds: list[Any]) -> Iterator[Record]:
        """``seeds``: the seed chunk of each item (None: nothing was retrieved for it)."""
        b = self.b
        plans: list[_Plan] = []
        for item, seed in zip(items, seeds):
            where = b.where(item, self.prompts.id)
            if seed is None:
                b.drop(None, "no_passages", source=where)
                continue
            sents = self.sentences(seed)
            if not sents:
                b.drop(None, "no_sentence", source=where, why="the passage has no answerable sentence")
                continue
            kind = _PROMPT_OF_TASK[item.task]
            prompt = self.prompts[kind]
            focus = self._focus(item, sents)
            rseed = b.request_seed(item)
            params = {**prompt.params, **b.params}
            plan = _Plan(item, seed, focus, kind, rseed, params)
            plan.request = b.source_request(prompt, seed=rseed, params=params, text=focus.text, rotate=rseed)
            plans.append(plan)
        results, budget = b.ask([p.request for p in plans], json=False)
        alive = []
        for plan, res in zip(plans, results):
            where = b.where(plan.item, self.prompts[plan.kind].id)
            if res is None:
                b.drop(None, "not_generated", why="request budget exhausted", source=where)
                continue
            if not getattr(res, "ok", False):
                b.drop(None, "llm_error", source=where, error=getattr(res, "error", None))
                continue
            plan.reply, plan.model, plan.provider = res.text, res.model, res.provider
            problem = self._parse(plan)
            if problem:
                b.drop(None, problem[0], source=where, raw=plan.reply, **problem[1])
                continue
            alive.append(plan)
        if alive:
            yield from self._answer(alive)
        if budget is not None:
            raise budget

    def _parse(self, plan: _Plan) -> tuple[str, dict[str, Any]] | None:
        """Fill ``plan.fields`` / ``plan.query`` from the reply, or say why it is unusable."""
        source_words = content_words(plan.seed.text) | content_words(plan.seed.title or "")
        reply = plan.reply
        if plan.kind == "question":
            q = clean_question(reply)
            if not q:
                return "llm_invalid_output", {"error": "no question in the reply"}
            written, plan.fields = q, {"question": q}
            plan.query = q
        elif plan.kind == "topic":
            topic = clean_line(reply, min_words=1, max_words=12)
            topic = topic.rstrip(".?!:;, ") if topic else None
            if not topic or "?" in topic:
                return "llm_invalid_output", {"error": "no topic in the reply"}
            written, plan.fields = topic, {"topic": topic[0].lower() + topic[1:] if not topic[:2].isupper() else topic}
            plan.query = topic
        else:
            parts = _QUESTION_SPLIT.split(reply.strip(), maxsplit=1)
            case = " ".join((clean_line(parts[0].replace("\n", " "), min_words=8, max_words=90) or "").split())
            if not case:
                return "llm_invalid_output", {"error": "no case in the reply"}
            question = clean_question(parts[1]) if len(parts) > 1 else None
            if not question:
                qs = self.prompts.data.get("adherence_questions") or ["What should be done for this patient?"]
                question = qs[plan.request_seed % len(qs)]
            written, plan.fields = case, {"case": case, "question": question}
            plan.query = f"{case} {question}"
            mismatch = _age_mismatch(case, plan.focus.text)
            if mismatch:
                return "case_mismatch", {"why": mismatch}
        mine = content_words(written)
        if not mine & source_words:
            return "off_topic", {"why": "names nothing of the passage"}
        leaked = (mine & self._example_words[plan.kind]) - source_words
        if leaked:
            return "copies_example", {"n_words": len(leaked)}
        return None

    # -- round trip and answer ------------------------------------------------------------------
    def _answer(self, plans: list[_Plan]) -> Iterator[Record]:
        b = self.b
        queries = [p.query for p in plans]
        qvecs = b.embedder.embed(queries)
        # the round trip searches as the index does (two_stage by default); the query vectors
        # are reused when they are the ones the index ranks by
        qe = b.index.query_embedder
        same = qe is b.embedder or (getattr(qe, "key", None) is not None
                                    and qe.key == getattr(b.embedder, "key", None))
        all_hits = b.index.search_many(queries, b.top_k, query_vectors=qvecs if same else None)
        self._prepare([h.chunk for hits in all_hits for h in hits])
        picks: list[tuple[_Plan, list[Hit], list[Sentence]]] = []
        for plan, hits, qvec in zip(plans, all_hits, qvecs):
            plan.qvec = qvec
            where = b.where(plan.item, self.prompts[plan.kind].id)
            ids = [h.chunk.chunk_id for h in hits]
            if plan.seed.chunk_id not in ids:
                b.drop(None, "roundtrip_failed", source=where, query=plan.query, k=b.top_k,
                       retrieved=ids)
                continue
            chosen = self._by_similarity(plan, hits)
            if not chosen:
                b.drop(None, "no_answer_sentence", source=where, query=plan.query,
                       min_similarity=self.min_similarity)
                continue
            picks.append((plan, hits, chosen))
        if self.select == "model" and picks:
            picks = list(self._by_model(picks))
        for plan, hits, chosen in picks:
            rec = self._record(plan, hits, chosen)
            if rec is not None:
                yield rec

    def _candidates(self, plan: _Plan, hits: list[Hit]) -> tuple[list[Sentence], Any, list[int]]:
        import numpy as np

        if plan.kind == "topic":  # a summary of what *this* guideline recommends
            hits = [h for h in hits if h.chunk.doc_id == plan.seed.doc_id]
        sents, vecs, ranks, seen = [], [], [], set()
        for r, h in enumerate(hits):
            s_list, v = self.sentences(h.chunk), self._vecs.get(h.chunk.chunk_id)
            for s, vec in zip(s_list, v if v is not None else []):
                if s.text in seen:  # overlapping chunks hold the same sentence
                    continue
                seen.add(s.text)
                sents.append(s)
                vecs.append(vec)
                ranks.append(r)
        return sents, (np.stack(vecs) if vecs else None), ranks

    def _by_similarity(self, plan: _Plan, hits: list[Hit]) -> list[Sentence]:
        import numpy as np

        sents, vecs, ranks = self._candidates(plan, hits)
        if not sents:
            return []
        sims = vecs @ plan.qvec
        if plan.kind != "question":  # summaries and cases are answered by recommendations
            sims = sims + 0.05 * np.array([s.recommends for s in sents])
        order = [int(i) for i in np.argsort(-sims, kind="stable")]
        best = float(sims[order[0]])
        if best < self.min_similarity:
            return []
        limit = self.max_sentences if plan.kind == "topic" else min(self.max_sentences, 2)
        floor = max(self.min_similarity, best - (self.margin * 2 if plan.kind == "topic" else self.margin))
        chosen = [i for i in order if sims[i] >= floor][:limit]
        chosen.sort(key=lambda i: (ranks[i], sents[i].chunk_id, sents[i].start))
        plan.fields["_similarity"] = round(best, 4)  # type: ignore[assignment]
        return [sents[i] for i in chosen]

    def _by_model(self, picks):
        """The model chooses among the best candidates by number (``select: model``)."""
        b = self.b
        prompt = self.prompts["pick"]
        reqs, shown = [], []
        for plan, hits, _ in picks:
            sents, vecs, _ = self._candidates(plan, hits)
            top = sorted(range(len(sents)), key=lambda i: -float(vecs[i] @ plan.qvec))[:8]
            cands = [sents[i] for i in sorted(top)]
            shown.append(cands)
            schema = {"type": "object", "required": ["sentences"], "properties": {"sentences": {
                "type": "array", "minItems": 1, "maxItems": self.max_sentences,
                "items": {"type": "integer", "enum": list(range(1, len(cands) + 1))}}}}
            reqs.append(b.source_request(prompt, seed=plan.request_seed, params=dict(prompt.params),
                                         schema=schema, question=plan.query,
                                         sentences=[s.text for s in cands]))
        results, budget = b.ask(reqs, json=True)
        for (plan, hits, fallback), cands, res in zip(picks, shown, results):
            nums = (res.data or {}).get("sentences") if res is not None and res.ok else None
            if not nums:
                b.drop(None, "llm_invalid_output", source=b.where(plan.item, prompt.id),
                       raw=getattr(res, "raw", None), error="no sentence numbers")
                continue
            chosen = [cands[n - 1] for n in sorted(set(nums)) if 1 <= n <= len(cands)]
            yield plan, hits, chosen
        if budget is not None:
            raise budget

    def _record(self, plan: _Plan, hits: list[Hit], chosen: list[Sentence]) -> Record | None:
        b = self.b
        passages = {h.chunk.chunk_id: h.chunk.text for h in hits}
        answer = " ".join(s.text for s in chosen)
        cited = list(dict.fromkeys(s.chunk_id for s in chosen))
        rows = [{"index": i, "chunk_id": s.chunk_id, "start": s.start, "end": s.end,
                 "supported": is_verbatim(s.text, passages.get(s.chunk_id, ""))}
                for i, s in enumerate(chosen)]
        ok = all(r["supported"] for r in rows)
        grounding = GroundingResult(ok, None if ok else "unsupported_sentence", cited, [], rows)
        answer_field = {"question": "answer", "topic": "summary", "case": "answer"}[plan.kind]
        data = {k: v for k, v in plan.fields.items() if not k.startswith("_")} | {answer_field: answer}
        rank = [h.chunk.chunk_id for h in hits].index(plan.seed.chunk_id) + 1
        extractive = {"mode": "extractive", "select": self.select, "focus": {
            "chunk_id": plan.focus.chunk_id, "start": plan.focus.start, "end": plan.focus.end},
            "sentences": rows, "similarity": plan.fields.get("_similarity"),
            "roundtrip": {"query": plan.query, "rank": rank, "k": b.top_k},
            "prompt_id": self.prompts[plan.kind].id, "prompt_hash": self.prompts[plan.kind].hash}
        return b.finish_record(plan.item, b.prompts[plan.item.task], hits, data, grounding,
                               seed=plan.request_seed, params=plan.params, model=plan.model,
                               provider=plan.provider, support={"method": "verbatim", "ok": ok,
                                                                "sentences": rows},
                               extra_meta={"answer": extractive},
                               gen_prompt=(self.prompts[plan.kind].id, self.prompts[plan.kind].hash))


def _age_mismatch(case: str, recommendation: str) -> str | None:
    """Why an invented patient's age contradicts the recommendation's population, if it does
    (a 13-year-old for a recommendation about adults, a 40-year-old for one about people
    aged 65 and older)."""
    m = _AGE.search(case)
    if not m:
        return None
    age = int(m.group(1))
    rec = recommendation.lower()
    older = re.search(r"aged (\d+) years? (?:and|or) (?:older|over)|(\d+) years? (?:and|or) older", rec)
    younger = re.search(r"(?:younger|less) than (\d+) years?", rec)
    if older and age < int(older.group(1) or older.group(2)):
        return "younger than the recommendation's population"
    if younger and age >= int(younger.group(1)):
        return "older than the recommendation's population"
    if re.search(r"\badults?\b", rec) and not re.search(r"\bchild|\bpaediatric|\bpediatric|\binfant", rec) and age < 18:
        return "a child, for a recommendation about adults"
    if re.search(r"\b(?:children|child|infants?)\b", rec) and not re.search(r"\badults?\b", rec) and age >= 18:
        return "an adult, for a recommendation about children"
    return None
