"""Language filter: keeps records in the allowed languages (English by default), using the
offline ``lingua`` detector built over a small candidate set (faster and steadier than
all 75 languages; its n-gram models ship inside the wheel, nothing is downloaded)."""

from __future__ import annotations

import functools
from typing import Any

from instructkit._exceptions import RecipeError
from instructkit._resources import require
from instructkit.records import Record
from instructkit.steps.quality.filters import QualityFilter, Verdict, _text
from instructkit.steps.quality.text import words

__all__ = ["LanguageFilter", "language_detector"]


@functools.lru_cache(maxsize=4)
def language_detector(codes: tuple[str, ...]):
    """A lingua detector for ISO 639-1 ``codes`` (shared per process: models are large)."""
    lingua = require("lingua", "quality", "language detection")
    langs = []
    for code in codes:
        iso = getattr(lingua.IsoCode639_1, code.upper(), None)
        if iso is None:
            raise RecipeError([f"stages.validate.filters.language: unknown ISO 639-1 code '{code}'"])
        langs.append(lingua.Language.from_iso_code_639_1(iso))
    if len(langs) < 2:
        raise RecipeError(["stages.validate.filters.language.detect: give at least two languages"])
    return lingua.LanguageDetectorBuilder.from_languages(*langs).build()


class LanguageFilter(QualityFilter):
    """Drop records whose text is confidently in a language that is not allowed."""

    key = "language"

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        allowed = [c.lower() for c in opts.get("allowed", ["en"])]
        detect = tuple(sorted({*(c.lower() for c in opts.get("detect", [])), *allowed}))
        function_words = {w.lower() for code in allowed
                          for w in (opts.get("function_words") or {}).get(code, [])}
        return {**opts, "allowed": set(allowed), "detect": detect, "function_words": function_words}

    def judge(self, record: Record, p: dict[str, Any]) -> Verdict:
        detector = None
        for field in p.get("fields", ["output"]):
            text = _text(record, field)[: int(p.get("max_chars", 1000))]
            tokens = [w.lower() for w in words(text)]
            if len(tokens) < int(p.get("min_words", 5)):
                continue
            if p["function_words"] and sum(t in p["function_words"] for t in tokens) / len(tokens) \
                    >= float(p.get("min_function_word_share", 0.1)):
                continue
            detector = detector or language_detector(p["detect"])
            values = detector.compute_language_confidence_values(text)
            if not values:
                continue
            top = values[0]
            code = top.language.iso_code_639_1.name.lower()
            if code not in p["allowed"] and top.value >= float(p.get("min_confidence", 0.6)):
                return "wrong_language", {"field": field, "detected": code,
                                          "confidence": round(float(top.value), 3)}
        return True
