"""Task-specific validity filters: each is on for its task in ``defaults.yaml`` and can be
turned on for another task in a recipe (``stages.validate.tasks.<task>.<filter>: true``).

Meta keys read (as the template builder writes them):
  multiple_choice     meta["options"] {letter: text}, meta["answer_key"] letter
  label_set           meta["labels"] list (optional), meta["label_set"] list (optional)
  decision            meta["final_decision"] (yes/no/maybe)
  impression_copy     meta["findings"] if present, else the input after "Findings:"
  series_vocabulary   meta["canonical_vocabulary"] list (or the recipe's vocabulary)
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from instructkit._resources import prompts_dir
from instructkit.records import Record
from instructkit.steps.quality.filters import QualityFilter, Verdict, _text
from instructkit.steps.quality.text import containment, normalize, word_count

__all__ = ["MultipleChoiceFilter", "LabelSetFilter", "DecisionFilter", "ImpressionCopyFilter",
           "SeriesVocabularyFilter"]


def _meta(record: Record) -> dict[str, Any]:
    m = record.get("meta")
    return m if isinstance(m, dict) else {}


# -- multiple choice ---------------------------------------------------------------------
_LEAD_LETTER = re.compile(r"^\s*(?:(?:the\s+)?(?:correct\s+|best\s+)?answer(?:\s+is)?\s*[:\-]?\s*)?\(?([A-Z])(?:[).:]|\s*$|\s+-)",
                          re.IGNORECASE)


class MultipleChoiceFilter(QualityFilter):
    """The answer key is one of the options, options are distinct and non-empty, and an
    output that names a letter names the key."""

    key = "multiple_choice"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        meta = _meta(record)
        options = meta.get("options")
        if not isinstance(options, dict) or len(options) < int(opts.get("min_options", 2)):
            return "invalid_options", {"why": "too_few_options",
                                       "n_options": len(options) if isinstance(options, dict) else 0}
        if any(not isinstance(v, str) or not v.strip() for v in options.values()):
            return "invalid_options", {"why": "empty_option"}
        norm = [normalize(v) for v in options.values()]
        if len(set(norm)) < len(norm):
            return "duplicate_options", {"n_options": len(norm), "n_distinct": len(set(norm))}
        key = meta.get("answer_key")
        letters = {str(k).strip().upper(): k for k in options}
        if not isinstance(key, str) or key.strip().upper() not in letters:
            return "answer_key_not_in_options", {"answer_key": key if isinstance(key, str) else None,
                                                 "options": sorted(letters)}
        if opts.get("check_output", True):
            m = _LEAD_LETTER.match(_text(record, "output"))
            if m and m.group(1).upper() in letters and m.group(1).upper() != key.strip().upper():
                return "answer_mismatch", {"answer_key": key, "output_letter": m.group(1).upper()}
        return True


# -- label set ---------------------------------------------------------------------------
@functools.cache
def template_label_set(task: str) -> tuple[str, ...]:
    """``label_set`` declared in ``prompts/templates/<task>.yaml``, if any."""
    path = prompts_dir() / "templates" / f"{task}.yaml"
    if not path.is_file():
        return ()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return ()
    return tuple(str(x) for x in (data.get("label_set") or []))


def split_labels(text: str, known: set[str], sep: str = ",") -> list[str]:
    """Split a label list; pieces are re-joined when together they form a known label
    (IU X-ray labels such as "Catheters, Indwelling" contain the separator)."""
    text = re.sub(r"^\s*labels?\s*:\s*", "", text.strip(), flags=re.IGNORECASE).rstrip(".").strip()
    pieces = [p.strip() for p in re.split(rf"{re.escape(sep)}|\n|;", text) if p.strip()]
    pieces = [re.sub(r"^[-*•]\s*", "", p) for p in pieces]
    out, i = [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            cand = f"{sep} ".join(pieces[i:j])
            if j - i == 1 or cand.casefold() in known:
                out.append(cand)
                i = j
                break
    return out


class LabelSetFilter(QualityFilter):
    """Labels are within the task's label set, at least one is given, and the output
    lists the same labels as ``meta["labels"]``. Records without ``meta["labels"]`` pass
    unless ``only_with_meta_labels`` is false (then the output is parsed as the labels)."""

    key = "label_set"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        meta = _meta(record)
        if "labels" not in meta and opts.get("only_with_meta_labels", True):
            return True  # free-text labeling (e.g. synthetic) has no structured labels to check
        allowed_list = opts.get("labels") or meta.get("label_set") or \
            list(template_label_set(record.get("task") or ""))
        allowed = {str(x).strip().casefold() for x in allowed_list}
        meta_labels = meta.get("labels")
        if meta_labels is not None and not isinstance(meta_labels, list):
            return "invalid_labels", {"why": "meta_labels_not_a_list"}
        meta_set = [str(x).strip() for x in (meta_labels or []) if str(x).strip()]
        known = allowed | {x.casefold() for x in meta_set}
        out_labels = split_labels(_text(record, "output"), known, opts.get("separator", ","))
        labels = meta_set if meta_labels is not None else out_labels
        if not labels:
            return "no_labels", {}
        if allowed:
            unknown = sorted({x for x in labels + out_labels if x.casefold() not in allowed})
            if unknown:
                return "label_not_in_set", {"unknown": unknown[:10], "n_unknown": len(unknown)}
        if meta_labels is not None and opts.get("check_output", True):
            if {x.casefold() for x in out_labels} != {x.casefold() for x in meta_set}:
                return "labels_mismatch", {"n_meta": len(meta_set), "n_output": len(out_labels)}
        return True


# -- yes / no / maybe ----------------------------------------------------------------------
_LEAD_DECISION = re.compile(
    r"^\W*(?:(?:final\s+)?(?:answer|verdict|decision|conclusion)\s*(?:is)?\s*[:\-]?\s*)?\W*([a-z]+)\b",
    re.IGNORECASE)


class DecisionFilter(QualityFilter):
    """The decision is yes, no or maybe (meta and output agree); a bare one-word
    answer is valid."""

    key = "decision"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        allowed = [str(a).lower() for a in opts.get("allowed", ["yes", "no", "maybe"])]
        meta = _meta(record)
        key = opts.get("meta_key", "final_decision")
        out = _text(record, "output")
        m = _LEAD_DECISION.match(out)
        lead = m.group(1).lower() if m else None
        lead = lead if lead in allowed else None
        if key in meta:
            value = str(meta[key]).strip().lower()
            if value not in allowed:
                return "invalid_decision", {"where": "meta", "allowed": allowed}
            if lead is not None and lead != value:
                return "decision_mismatch", {"meta": value, "output": lead}
        elif lead is None:
            return "invalid_decision", {"where": "output", "allowed": allowed}
        if lead is None and word_count(out) <= 3:
            # a short output must be the decision itself
            return "invalid_decision", {"where": "output", "allowed": allowed}
        return True


# -- impression is not the findings ----------------------------------------------------------
_FINDINGS = re.compile(r"findings\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)


class ImpressionCopyFilter(QualityFilter):
    """The impression summarises the findings rather than copying them."""

    key = "impression_copy"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        meta = _meta(record)
        findings = meta.get("findings") if isinstance(meta.get("findings"), str) else None
        if findings is None:
            inp = _text(record, "input")
            m = _FINDINGS.search(inp)
            findings = m.group(1) if m else inp
        impression = _text(record, "output")
        if not findings.strip():
            return True
        if normalize(impression) and normalize(impression) == normalize(findings):
            return "impression_copies_findings", {"containment": 1.0}
        if word_count(impression) >= int(opts.get("min_words", 6)):
            share = containment(impression, findings, int(opts.get("ngram", 3)))
            if share >= float(opts.get("max_containment", 0.8)):
                return "impression_copies_findings", {"containment": round(share, 3)}
        return True


# -- canonical series vocabulary -------------------------------------------------------------
class SeriesVocabularyFilter(QualityFilter):
    """The harmonized series description is one of the canonical labels."""

    key = "series_vocabulary"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        vocab = opts.get("vocabulary") or _meta(record).get("canonical_vocabulary") or []
        if not vocab:
            return True  # nothing to check against; the builder's mapping already chose a label
        label = re.sub(r"^\s*(?:label|canonical(?: label)?)\s*:\s*", "", _text(record, "output"),
                       flags=re.IGNORECASE).strip().rstrip(".").strip()
        if opts.get("case_sensitive", False):
            ok = label in {str(v) for v in vocab}
        else:
            ok = label.casefold() in {str(v).casefold() for v in vocab}
        if not ok:
            return "not_in_vocabulary", {"vocabulary_size": len(vocab)}
        return True
