"""Which text of a record the anonymize stage may rewrite: only text from a PHI source.

The principle: **a record's text is scanned only where it may hold text from a source that
may hold PHI.** PHI is someone's; text nobody's patient wrote is never rewritten, however
much it looks like a name ("Case:" is a label, "Thomas R. Frieden" wrote a public foreword,
"National Hospital Ambulatory Medical Care Survey" is a survey). Three kinds of text are
held apart, each counted in the stage summary by reason:

``template_text``
    A template record's literal template text: the instruction phrasing's words, labels
    such as "Findings:" or "Case:", the few-shot header and the few-shot example turns
    shipped in ``prompts/``. The template builder renders each field a second time with
    every ``{{ expression }}`` wrapped in markers and keeps, in
    ``provenance.template_text``, the ranges the row filled in and a hash of the field
    (offsets and hashes, no text). The detector still reads the whole field (a name needs
    its context); findings are then cut to the filled ranges: "Dr. {{ name }}" still loses
    the name. Why markers rather than matching the template's literal pieces in the text:
    ``{% if %}``/``{% for %}`` templates, filters and a value that repeats a label make
    matching ambiguous; the marked rendering says exactly which characters a value wrote.
    A record's claim is checked before it is believed, so a record read from a file cannot
    shield its own text: the template set it names must be known (rendered in this process,
    or shipped, with the same hash), the field must hash as it did when rendered, and every
    range left out must be made of that set's literal pieces (``TemplateSet.literal_texts``).
    Any check failing means the whole field is scanned.

``phi_free_source``
    A template record of a source declared ``phi: false``: nothing in it came from a
    patient (the row is public, the rest is template text).

``phi_free_llm_output``
    A record a language model wrote (rag, synthetic) whose every input was declared free
    of PHI: a RAG or back-translation builder whose documents are all ``phi: false``, a
    back-translation of a ``phi: false`` source's rows, Self-Instruct/Evol-Instruct from the
    project's own seed pool (or one declared ``seed_tasks_phi: false``). What the model
    wrote from them holds no one's PHI; a model that invents an identifier invents no
    patient's. The residual-PHI audit still reads these records, and identifiers it treats
    as direct still count there whatever the declaration.

The safety property is kept: a PHI source's text inside a template is scanned (only the
template's own characters are spared), and what a model wrote from a PHI source is scanned
whole. Which builders count as PHI-free is the run's declaration (``ctx.phi_free_sources``,
``ctx.phi_free_copies``, filled from the recipe), never a record's say.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["HELD_APART_REASONS", "whole_record_reason", "template_text_ranges", "clip_findings"]

HELD_APART_REASONS = ("template_text", "phi_free_source", "phi_free_llm_output")

#: builders whose records a language model wrote
LLM_METHODS = frozenset({"rag", "synthetic"})


def whole_record_reason(rec: Mapping[str, Any], phi_free_sources: Collection[str],
                        phi_free_inputs: Collection[str]) -> str | None:
    """Why no text of ``rec`` is rewritten (a reason of ``HELD_APART_REASONS``), or None.

    ``phi_free_sources``: sources declared ``phi: false``; ``phi_free_inputs``: names under
    which LLM builders write records from PHI-free inputs only (``ctx.phi_free_copies``)."""
    name = (rec.get("source") or {}).get("name")
    if not isinstance(name, str):
        return None
    method = rec.get("method")
    if method == "template" and name in phi_free_sources:
        return "phi_free_source"
    if method in LLM_METHODS and (name in phi_free_sources or name in phi_free_inputs):
        return "phi_free_llm_output"
    return None


def template_text_ranges(rec: Mapping[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """For each field of a template record whose claim checks out: the ranges of the
    template's own text (the complement of what the row filled in), by path label
    (``instruction``, ``input``, ``output``, ``meta.<k>``). Empty when nothing checks out."""
    prov = rec.get("provenance") or {}
    claim = prov.get("template_text")
    if rec.get("method") != "template" or not isinstance(claim, Mapping) or not claim:
        return {}
    from instructkit.recordbuilders.template import field_hash, find_template_set

    tid, thash = prov.get("template_id"), prov.get("template_hash")
    if not isinstance(tid, str) or not isinstance(thash, str):
        return {}
    tset = find_template_set(tid, thash)
    if tset is None:
        return {}
    literals = tset.literal_texts()
    out: dict[str, list[tuple[int, int]]] = {}
    for field, entry in claim.items():
        text = _field(rec, field)
        if not isinstance(text, str) or not isinstance(entry, Mapping):
            continue
        if entry.get("sha") != field_hash(text):
            continue
        literal = _complement(entry.get("filled"), len(text))
        if literal is None:
            continue
        if all(_made_of(text[s:e], literals, at_start=s == 0, at_end=e == len(text))
               for s, e in literal):
            out[field] = literal
    return out


def _field(rec: Mapping[str, Any], label: str) -> Any:
    if label.startswith("meta."):
        return (rec.get("meta") or {}).get(label[5:])
    if label in ("instruction", "input", "output"):
        return rec.get(label)
    return None


def _complement(filled: Any, n: int) -> list[tuple[int, int]] | None:
    """The ranges of [0, n) outside ``filled`` (sorted, disjoint ranges), or None when
    ``filled`` is not that."""
    if not isinstance(filled, list):
        return None
    out, pos = [], 0
    for span in filled:
        if not (isinstance(span, list) and len(span) == 2 and all(type(x) is int for x in span)):
            return None
        s, e = span
        if s < pos or e <= s or e > n:
            return None
        if s > pos:
            out.append((pos, s))
        pos = e
    if pos < n:
        out.append((pos, n))
    return out


def _made_of(piece: str, literals: frozenset[str], *, at_start: bool, at_end: bool) -> bool:
    """``piece`` is a run of whole literal pieces of the template; at the start of a field
    the first may have lost its leading whitespace, at the end the last its trailing
    whitespace (a rendering is stripped)."""
    n = len(piece)
    reach = [False] * (n + 1)
    reach[0] = True
    if at_start:  # the field's first piece: any stripped tail of a literal
        for lit in literals:
            stripped = lit.lstrip()
            for k in range(len(lit) - len(stripped), len(lit) + 1):
                tail = lit[k:]
                if tail and piece.startswith(tail) and tail.lstrip() == tail:
                    reach[len(tail)] = True
    for i in range(n):
        if not reach[i]:
            continue
        for lit in literals:
            if piece.startswith(lit, i):
                reach[i + len(lit)] = True
            elif at_end and lit.startswith(piece[i:]) and lit[n - i:].strip() == "":
                reach[n] = True
    return reach[n]


def clip_findings(findings: list[Any], literal: list[tuple[int, int]],
                  text: str) -> tuple[list[Any], int]:
    """``findings`` in ``text`` cut to what lies outside ``literal`` (the template's own
    ranges): a finding inside template text is dropped, one straddling it keeps its part
    from the row ("Dr. " of the template, the name of the row). Returns the findings and how
    many were dropped or cut."""
    if not literal or not findings:
        return findings, 0
    import dataclasses

    out, touched = [], 0
    for f in findings:
        parts = [(f.start, f.end)]
        for s, e in literal:
            nxt = []
            for a, b in parts:
                if b <= s or a >= e:
                    nxt.append((a, b))
                    continue
                if a < s:
                    nxt.append((a, s))
                if b > e:
                    nxt.append((e, b))
            parts = nxt
        if parts == [(f.start, f.end)]:
            out.append(f)
            continue
        touched += 1
        for a, b in parts:
            while a < b and not text[a].isalnum():
                a += 1
            while b > a and not text[b - 1].isalnum():
                b -= 1
            if b > a:
                out.append(dataclasses.replace(f, start=a, end=b))
    return out, touched
