"""The abstractive mode of the rag builder: the model writes question, answer and the labels
of the passages that support it (structured output). The citation check (``grounding``)
keeps only supported answers (else ``ungrounded``), and the round trip (the question,
searched against the index, finds its seed passage in the top k) keeps only questions
that ask about their passage (else ``roundtrip_failed``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from instructkit.recordbuilders.rag.index import Hit
from instructkit.recordbuilders.rag.prompts import RagPrompt
from instructkit.records import Record

if TYPE_CHECKING:  # pragma: no cover
    from instructkit.recordbuilders.rag.builder import RagBuilder, WorkItem

__all__ = ["abstractive_batch", "roundtrip_query"]


def abstractive_batch(builder: "RagBuilder", items: list["WorkItem"], hits_per_item: list[list[Hit]]) -> Iterator[Record]:
    """Records (or quarantine lines) for one batch of work items, in item order."""
    views = []
    for item, hits in zip(items, hits_per_item):
        prompt = builder.prompts[item.task]
        passages = [{"label": f"P{j + 1}", "chunk_id": h.chunk.chunk_id, "text": h.chunk.text,
                     "title": h.chunk.title, "section": h.chunk.section} for j, h in enumerate(hits)]
        labels = [p["label"] for p in passages]
        params = {**prompt.params, **builder.params}
        seed = builder.request_seed(item)
        request = builder.source_request(prompt, seed=seed, params=params, schema=prompt.schema(labels),
                                      passages=passages, topic=item.query,
                                      focus=labels[0] if labels else "P1")
        views.append((item, prompt, hits, passages, seed, params, request))
    results, budget = builder.ask([v[-1] for v in views], json=True)
    # parse all, search every usable question at once, then build or drop in item order
    parsed = [None if r is None else _parse(v[1], v[2], r) for v, r in zip(views, results)]
    usable = [i for i, p in enumerate(parsed) if p is not None and not isinstance(p, tuple)]
    queries = {i: roundtrip_query(parsed[i]) for i in usable}
    found = dict(zip(usable, builder.index.search_many([queries[i] for i in usable], builder.top_k))) \
        if (usable and builder.roundtrip) else {}
    for i, ((item, prompt, hits, passages, seed, params, _), result) in enumerate(zip(views, results)):
        where = builder.where(item, prompt.id)
        if result is None:
            builder.drop(None, "not_generated", why="request budget exhausted", source=where)
            continue
        if isinstance(parsed[i], tuple):
            reason, details = parsed[i]
            builder.drop(None, reason, source=where, raw=getattr(result, "raw", None), **details)
            continue
        data = parsed[i]
        label_to_chunk = {p["label"]: p["chunk_id"] for p in passages}
        cited = [label_to_chunk.get(str(c), str(c)) for c in data["citations"]]
        retrieved = {h.chunk.chunk_id: h.chunk.text for h in hits}
        grounding = builder.checker.check(data[prompt.answer_field], cited, retrieved)
        roundtrip = None
        if i in found:
            ids = [h.chunk.chunk_id for h in found[i]]
            # the seed passage, or for a topic query any cited passage, must come back
            targets = [item.chunk_id] if item.chunk_id else grounding.cited
            rank = min((ids.index(t) + 1 for t in targets if t in ids), default=None)
            if rank is None:
                builder.drop(None, "roundtrip_failed", source=where, query=queries[i], k=builder.top_k,
                          retrieved=ids)
                continue
            roundtrip = {"query": queries[i], "rank": rank, "k": builder.top_k}
        rec = builder.finish_record(item, prompt, hits, data, grounding, seed=seed, params=params,
                                 model=getattr(result, "model", None),
                                 provider=getattr(result, "provider", None),
                                 support=grounding.as_meta(builder.checker.method, builder.checker.thresholds),
                                 extra_meta={"answer": {"mode": "abstractive", "roundtrip": roundtrip}},
                                 passage_labels=label_to_chunk,
                                 params_sent=getattr(result, "params", None))
        if rec is not None:
            yield rec
    if budget is not None:
        raise budget

def _parse(prompt: RagPrompt, hits: list[Hit], result: Any) -> dict[str, Any] | tuple[str, dict[str, Any]]:
    """The model's fields, or (reason, details) when they cannot make a record."""
    if not hits:
        return "no_passages", {}
    if not getattr(result, "ok", False) or not isinstance(getattr(result, "data", None), dict):
        return "llm_error", {"error": getattr(result, "error", None)}
    data = result.data
    needed = [k for k in prompt.output_schema.get("required", []) if not isinstance(data.get(k), (str, list))]
    if needed or not isinstance(data.get(prompt.answer_field), str) or not isinstance(data.get("citations"), list):
        return "llm_invalid_output", {
            "error": f"missing or mistyped field(s): {', '.join(needed) or prompt.answer_field}"}
    return data


def roundtrip_query(data: dict[str, Any]) -> str:
    """What the round-trip check searches for: what the model wrote that asks (the case and
    question of an adherence item, the question, or the topic of a summary)."""
    return " ".join(str(data[k]) for k in ("case", "question", "topic") if isinstance(data.get(k), str))
