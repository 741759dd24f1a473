"""Generic quality filters of the validate stage: each keeps a record or drops it with a
named reason. Settings come per task from ``QualitySettings`` (``defaults.yaml`` + recipe).

Details written with a drop are field names, counts and pattern numbers, never the
matched text, so a quarantine line says *why* without repeating record text.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from instructkit.records import Record
from instructkit.steps.base import Filter
from instructkit.steps.quality.settings import QualitySettings
from instructkit.steps.quality.text import approx_tokens, containment, normalize, sentences, word_count

__all__ = ["QualityFilter", "EmptyFieldsFilter", "LengthFilter", "TemplateLeakageFilter",
           "ModelArtefactFilter", "TruncationFilter", "CopyFilter", "RepetitionFilter"]

Verdict = Any  # True | reason | (reason, details)


class QualityFilter(Filter):
    """A filter whose settings depend on the record's task.

    ``key`` names the filter in recipes and ``defaults.yaml``; the stage name is
    ``validate.<key>`` so the manifest and card show each filter's counts on its own row.
    """

    key = "quality"

    def __init__(self, settings: QualitySettings | None = None) -> None:
        self.name = f"validate.{self.key}"
        super().__init__()
        self.quality = settings or QualitySettings()
        self._prepared: dict[str, Any] = {}

    def prepare(self, opts: dict[str, Any]) -> Any:
        """Turn merged settings into what ``judge`` needs (compiled patterns); cached per task."""
        return opts

    def options(self, task: str | None) -> Any:
        t = task or ""
        if t not in self._prepared:
            opts = self.quality.for_task(self.key, task)
            self._prepared[t] = None if opts is None else self.prepare(opts)
        return self._prepared[t]

    def check(self, record: Record) -> Verdict:
        prepared = self.options(record.get("task"))
        if prepared is None:
            return True
        return self.judge(record, prepared)

    def judge(self, record: Record, prepared: Any) -> Verdict:
        raise NotImplementedError


def _text(record: Record, field: str) -> str:
    v = record.get(field)
    return v if isinstance(v, str) else ""


def _compile_all(patterns: list[str] | None, flags: int = re.IGNORECASE) -> list[re.Pattern]:
    return [re.compile(p, flags) for p in (patterns or [])]


_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
#: what makes a pattern's match depend on where the text ends (a sentence or the whole text)
_ANCHOR = re.compile(r"\^|\$|\\[AZ]|\(\?<[=!]")


class _Patterns:
    """A list of patterns with one combined pattern in front: most texts match none of them,
    and one pass of the alternation says so (a record's fields went through ~30 searches);
    only a text that matches is searched pattern by pattern, for the pattern's number.
    Patterns with back-references (whose numbers an alternation would shift) are not combined."""

    def __init__(self, patterns: list[str] | None, flags: int = re.IGNORECASE) -> None:
        self.each = _compile_all(patterns, flags)
        plain = patterns and not any(_BACKREFERENCE.search(x) for x in patterns)
        self.any = re.compile("|".join(f"(?:{x})" for x in patterns), flags) if plain else None

    def __bool__(self) -> bool:
        return bool(self.each)

    def first(self, text: str) -> int | None:
        """The number of the first pattern found in ``text``, or None."""
        if not self.each or (self.any is not None and not self.any.search(text)):
            return None
        for i, rx in enumerate(self.each):
            if rx.search(text):
                return i
        return None


# -- empty fields ------------------------------------------------------------------------
class EmptyFieldsFilter(QualityFilter):
    """Drop records with an empty or whitespace-only required field."""

    key = "empty_fields"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        for field in opts.get("fields", []):
            if not _text(record, field).strip():
                return "empty_field", {"field": field}
        return True


# -- length --------------------------------------------------------------------------------
class LengthFilter(QualityFilter):
    """Drop records whose fields are too short or too long, in words and approximate tokens."""

    key = "length"
    FIELDS = ("instruction", "input", "output")

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        total_tokens = 0
        for field in self.FIELDS:
            text = _text(record, field)
            bounds = opts.get(field) or {}
            need_tokens = "min_tokens" in bounds or "max_tokens" in bounds
            n_words = word_count(text)
            n_tokens = approx_tokens(text)
            total_tokens += n_tokens
            for unit, value in (("words", n_words), ("tokens", n_tokens if need_tokens else None)):
                if value is None:
                    continue
                lo, hi = bounds.get(f"min_{unit}"), bounds.get(f"max_{unit}")
                if lo is not None and value < lo:
                    return "too_short", {"field": field, "unit": unit, "value": value, "min": lo}
                if hi is not None and value > hi:
                    return "too_long", {"field": field, "unit": unit, "value": value, "max": hi}
        cap = opts.get("max_tokens")
        if cap is not None and total_tokens > cap:
            return "too_long", {"field": "record", "unit": "tokens", "value": total_tokens, "max": cap}
        return True


# -- template leakage ----------------------------------------------------------------------
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|\{\{|\}\}|\{%|%\}", re.DOTALL)


class TemplateLeakageFilter(QualityFilter):
    """Drop records with unrendered template syntax, placeholder names or prompt echo."""

    key = "template_leakage"

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        names = "|".join(re.escape(n) for n in opts.get("placeholder_names") or [])
        placeholders = _compile_all(opts.get("placeholder_patterns"))
        if names:
            # {name}, <name>, [name], ${name}: the shapes format strings and prompts use
            placeholders.insert(0, re.compile(
                rf"\{{\s*(?:{names})\s*\}}|<\s*(?:{names})\s*>|\[\s*(?:{names})\s*\]|\$\{{?(?:{names})\b",
                re.IGNORECASE))
        return {"fields": opts.get("fields", []), "jinja": opts.get("jinja", True),
                "placeholders": placeholders, "echo_fields": opts.get("echo_fields", []),
                "echo": _compile_all(opts.get("echo_patterns"), re.IGNORECASE | re.MULTILINE)}

    def judge(self, record: Record, p: dict[str, Any]) -> Verdict:
        for field in p["fields"]:
            text = _text(record, field)
            if p["jinja"] and _JINJA.search(text):
                return "template_leakage", {"field": field, "kind": "unrendered_template"}
            for i, rx in enumerate(p["placeholders"]):
                if rx.search(text):
                    return "template_leakage", {"field": field, "kind": "placeholder", "pattern": i}
        for field in p["echo_fields"]:
            text = _text(record, field)
            for i, rx in enumerate(p["echo"]):
                if rx.search(text):
                    return "template_leakage", {"field": field, "kind": "prompt_echo", "pattern": i}
        return True


# -- model artefacts -----------------------------------------------------------------------
class ModelArtefactFilter(QualityFilter):
    """Drop refusals, disclaimers in place of an answer, meta-text and chat-role tokens.

    A refusal is the model declining or talking about itself; a disclaimer ("consult your
    doctor") is dropped only when, without its disclaimer sentences, fewer than
    ``min_answer_words`` words of answer remain — a real answer that also advises seeing
    a doctor is kept.
    """

    key = "model_artefacts"

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        return {"fields": opts.get("fields", []),
                "identity": _Patterns(opts.get("ai_identity")),
                "refusal": _Patterns(opts.get("refusal")),
                "window": int(opts.get("refusal_window", 160)),
                "disclaimer": _Patterns(opts.get("disclaimer")),
                # a disclaimer found in a sentence is found in the whole output too, unless a
                # pattern is anchored: then every sentence is read
                "disclaimer_prefilter": not any(_ANCHOR.search(x) for x in opts.get("disclaimer") or []),
                "min_answer_words": int(opts.get("min_answer_words", 6)),
                "meta": _Patterns(opts.get("meta_text"), re.IGNORECASE | re.MULTILINE),
                # text about the task or the example itself, wherever the model put it
                "meta_fields": opts.get("meta_text_fields", opts.get("fields", [])),
                "chat_fields": opts.get("chat_token_fields", []),
                "chat": _Patterns(opts.get("chat_tokens"))}

    def judge(self, record: Record, p: dict[str, Any]) -> Verdict:
        for field in p["chat_fields"]:
            i = p["chat"].first(_text(record, field))
            if i is not None:
                return "chat_tokens", {"field": field, "pattern": i}
        for field in p["fields"]:
            text = _text(record, field)
            i = p["identity"].first(text)
            if i is not None:
                return "refusal", {"field": field, "kind": "ai_identity", "pattern": i}
            i = p["refusal"].first(text[:p["window"]])
            if i is not None:
                return "refusal", {"field": field, "kind": "refusal", "pattern": i}
        for field in p["meta_fields"]:
            i = p["meta"].first(_text(record, field))
            if i is not None:
                return "meta_text", {"field": field, "pattern": i}
        out = _text(record, "output")
        # most outputs have no disclaimer anywhere, and are not cut into sentences
        if p["disclaimer"] and "output" in p["fields"] and (
                not p["disclaimer_prefilter"] or p["disclaimer"].first(out) is not None):
            rest, hit = [], False
            for sent in sentences(out):
                if p["disclaimer"].first(sent) is not None:
                    hit = True
                else:
                    rest.append(sent)
            if hit and word_count(" ".join(rest)) < p["min_answer_words"]:
                return "disclaimer", {"field": "output", "answer_words": word_count(" ".join(rest))}
        return True


# -- truncation ----------------------------------------------------------------------------
_EMOTICON = re.compile(r"[:;]-?[(\[]")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·–]|\d{1,3}[.)]|[a-zA-Z][.)])\s+")
_TERMINAL = re.compile(r"""[.!?…:;)\]}"'»”’*%]\d{0,3}\s*$""")
# how a sentence cut by a token limit ends: a lowercase word or a connecting mark
_CUT_END = re.compile(r"(?:\b[a-z][a-z'’-]*|[,(\-–—/&+])\s*$")


class TruncationFilter(QualityFilter):
    """Drop outputs cut off by the generator: finish reason ``length``, brackets, quotes
    or code fences left open, or a long answer whose last sentence stops mid-way."""

    key = "truncation"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        meta = record.get("meta") or {}
        llm_meta = meta.get("llm") if isinstance(meta.get("llm"), dict) else {}
        finish = meta.get("finish_reason") or llm_meta.get("finish_reason")
        if finish and finish in (opts.get("finish_reasons") or []):
            return "truncated", {"why": "finish_reason", "finish_reason": finish}
        for field in opts.get("fields", ["output"]):
            why = self._why(_text(record, field), opts)
            if why:
                return "truncated", {"why": why, "field": field}
        return True

    @staticmethod
    def _why(text: str, opts: dict[str, Any]) -> str | None:
        if opts.get("code_fences", True) and text.count("```") % 2:
            return "open_code_fence"
        if opts.get("brackets", True):
            # only openers left open count: enumerators like "1)" close what nobody opened
            plain = _EMOTICON.sub(" ", text)
            for o, c in ("()", "[]", "{}"):
                if plain.count(o) > plain.count(c):
                    return "unbalanced_brackets"
        if opts.get("quotes", True):
            if text.count('"') % 2 or text.count("“") > text.count("”"):
                return "unbalanced_quotes"
        end = opts.get("sentence_end")
        if end:
            min_words = int(end.get("min_words", 12)) if isinstance(end, dict) else 12
            stripped = text.rstrip()
            last = stripped.splitlines()[-1] if stripped else ""
            # list items (also inline: "affects - eyes - feet") end without punctuation
            is_list = bool(_LIST_ITEM.match(last) or re.search(r"\s[-•]\s", last))
            tail = last.split()[-1] if last.split() else ""
            if word_count(text) >= min_words and word_count(last) >= 5 \
                    and not is_list and not last.lstrip().startswith(("#", "|")) \
                    and not _TERMINAL.search(last) and _CUT_END.search(last) \
                    and not any(c in tail for c in "/@"):  # a URL or address ends the text
                return "cut_mid_sentence"
        return None


# -- copying -------------------------------------------------------------------------------
class CopyFilter(QualityFilter):
    """Drop outputs that repeat the input or the instruction instead of answering.

    ``exclude_meta`` names meta fields whose text is *meant* to be in both: a
    multiple-choice answer is one of the options of its input, so the options
    (``meta.options``) are taken out of output and input before they are compared (an
    output that copies the whole question is still a copy).
    """

    key = "copy"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        out = _text(record, "output")
        allowed = [normalize(p) for p in _meta_texts(record, opts.get("exclude_meta") or [])]
        if allowed:  # what is left of the output without the options is compared
            out = normalize(out)
            for part in allowed:
                out = out.replace(part, " ")
        n_out = word_count(out)
        norm_out = normalize(out)
        for field in opts.get("against", []):
            other = _text(record, field)
            if allowed:  # compared as normalised text, so spacing and case do not matter
                other = normalize(other)
                for part in allowed:
                    other = other.replace(part, " ")
            if not other.strip():
                continue
            if norm_out and norm_out == normalize(other):
                return f"copies_{field}", {"field": field, "containment": 1.0}
            if n_out >= int(opts.get("min_words", 6)):
                share = containment(out, other, int(opts.get("ngram", 3)))
                if share >= float(opts.get("max_containment", 0.9)):
                    return f"copies_{field}", {"field": field, "containment": round(share, 3)}
        return True


def _meta_texts(record: Record, keys: list[str]) -> list[str]:
    """The strings under ``meta[key]`` (a string, a list, or a mapping's values), longest first."""
    meta = record.get("meta")
    if not keys or not isinstance(meta, dict):
        return []
    out: list[str] = []
    for k in keys:
        v = meta.get(k)
        vals = v.values() if isinstance(v, dict) else v if isinstance(v, list) else [v]
        out += [x for x in vals if isinstance(x, str) and x.strip()]
    return sorted(out, key=len, reverse=True)


# -- repetition ----------------------------------------------------------------------------
def _grams(words: list[str], n: int) -> list[tuple[str, ...]]:
    """Every n-gram of ``words`` in order (built by ``zip``: no slice per position)."""
    return list(zip(*(words[k:] for k in range(n))))


def _duplicate_chars(words: list[str], n: int) -> int:
    """Characters in n-grams already seen (non-overlapping), as Gopher/datatrove count them."""
    grams = _grams(words, n)
    if len(set(grams)) == len(grams):  # nothing repeats: the usual case for prose
        return 0
    seen: set[tuple[str, ...]] = set()
    repeated, i = 0, 0
    while i < len(grams):
        gram = grams[i]
        if gram in seen:
            repeated += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated


_LOOP_WORD = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*")


def _longest_repeat_run(words: list[str], max_n: int) -> tuple[int, int]:
    """The most times any phrase of 1..``max_n`` words is said back to back, and the
    phrase's length ("what is the answer? what is the answer? what is the answer?" -> (3, 4)).
    Masks such as ``xxxx`` (IU X-ray's de-identification) and numbers are not words a model
    loops on."""
    best, best_n = 1, 1
    for n in range(1, min(max_n, len(words) // 2) + 1):
        # words[i] == words[i + n] for a stretch of m positions from i: words[i:i + m + n]
        # repeats its first n words back to back (m + n) // n times. Runs of matches are
        # found with list.index, so prose (almost no matches) costs one comparison a word.
        same = list(map(str.__eq__, words, words[n:]))
        i, end = 0, len(same)
        while True:
            try:
                i = same.index(True, i)
            except ValueError:
                break
            j = i
            while j < end and same[j]:
                j += 1
            copies = (j - i + n) // n
            if copies > best and not all(w.isdigit() or set(w) == {"x"} for w in words[i:i + n]):
                best, best_n = copies, n
            i = j
    return best, best_n


class RepetitionFilter(QualityFilter):
    """Drop degenerate, looping text: a phrase said back to back again and again (any
    length of text), and Gopher's repetition statistics (longer texts)."""

    key = "repetition"

    def judge(self, record: Record, opts: dict[str, Any]) -> Verdict:
        for field in opts.get("fields", ["output"]):
            why = self._why(_text(record, field), opts)
            if why:
                return "repetition", {"field": field, **why}
        return True

    @staticmethod
    def _why(text: str, opts: dict[str, Any]) -> dict[str, Any] | None:
        loop = opts.get("consecutive_repeats")
        if loop:
            tokens = _LOOP_WORD.findall(text.lower())
            run, n = _longest_repeat_run(tokens, int(loop.get("max_phrase_words", 6)))
            limit = int(loop.get("max_repeats", 2))
            # a loop is most of what the text says; a form or table in a long text repeats a
            # row ("I will eat ___ instead of ___") without being one, unless it goes on and on
            share = run * n / max(len(tokens), 1)
            if run > limit and (share >= float(loop.get("min_share", 0.3))
                                or run > int(loop.get("max_repeats_anywhere", 6))):
                return {"measure": "consecutive_repeats", "value": run, "max": limit, "share": round(share, 3)}
        words = text.lower().split()
        if len(words) < int(opts.get("min_words", 20)):
            return None
        for unit, parts, limit in (
                ("line", [ln.strip() for ln in text.splitlines() if ln.strip()],
                 opts.get("max_duplicate_line_fraction")),
                ("sentence", [normalize(s) for s in sentences(text)],
                 opts.get("max_duplicate_sentence_fraction"))):
            if limit is None or len(parts) < 3:
                continue
            counts = Counter(parts)
            dup = sum(c - 1 for c in counts.values() if c > 1) / len(parts)
            if dup > float(limit):
                return {"measure": f"duplicate_{unit}_fraction", "value": round(dup, 3), "max": limit}
        total = sum(map(len, words)) or 1
        for n, limit in sorted((int(k), float(v)) for k, v in (opts.get("top_ngram_char_fraction") or {}).items()):
            grams = Counter(_grams(words, n))
            if not grams:
                continue
            gram, count = grams.most_common(1)[0]
            if count >= int(opts.get("top_ngram_min_count", 2)):
                share = count * sum(map(len, gram)) / total
                if share > limit:
                    return {"measure": f"top_{n}gram_char_fraction", "value": round(share, 3), "max": limit}
        for n, limit in sorted((int(k), float(v)) for k, v in (opts.get("duplicate_ngram_char_fraction") or {}).items()):
            repeated = _duplicate_chars(words, n)
            if not repeated:  # no n-gram said twice: no longer one either
                break
            share = repeated / total
            if share > limit:
                return {"measure": f"duplicate_{n}gram_char_fraction", "value": round(share, 3), "max": limit}
        return None
