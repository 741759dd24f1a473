"""PHI detection quality of the anonymize stage: recall / precision by type, leak rate.

Sets:
  * ../shared/data/pii/presidio_synth_dataset_v2.json (general PII sentences, gold spans),
    scored whole and in two halves by a hash of each sentence's template (``synth_half``):
    ``tune`` (what the name and place rules were tuned on; ``--leaks`` prints its leaked
    gold spans) and ``held-out`` (templates never looked at while tuning);
  * a clinical-note PHI set generated here: Faker values in clinical note templates with
    known spans, plus hard negatives (eponyms, drugs, lab values) that must stay;
  * clinical questions (bench/clinical_phi_set.py, issue 12): short clinician questions and
    notes with hospitals in the forms people write them, prefixed record numbers, plan and
    member ids, e-mails, unique ids and dates, in two splits: ``tune`` (what the
    recognizers were tuned on) and ``eval`` (other seeds, other halves of the CMS hospital
    list, other name locales, other facility phrasings: never looked at while tuning);
  * PHI-free clinical questions (the same generator without PHI): word retention, the share
    of words no finding touches.

Anchors, on the same texts in the same run (bench/phi_anchors.py): stock Presidio
(AnalyzerEngine with its default recognizers on the same spaCy model) and philter-lite
(PyPI, a fork of UCSF's Philter, its shipped philter_delta.toml). philter-lite needs NLTK's
English POS tagger, which is not on PyPI: convert the nltk_data zip with
``bench/nltk_tagger.py`` (see --help below); without it the bench prints "philter-lite anchor
absent: ..." and leaves that row out.

PHI-free text: the PHI-free clinical questions (tune and eval generator splits), MedQA exam
questions and MedText cases (../shared/data, halves by a hash of the text): the share of words
no finding touches, and the share of texts given at least one placeholder.

Every set is reported per half (``tune``: what rules were written from; ``held-out``: never
looked at while tuning) and per detector; the summary ends with one table per half in the
columns of issue 26.

Recall: share of gold spans overlapped by any finding (de-identification does not care
which type removed it). Precision: share of findings that overlap a gold span.
Leak rate: share of gold PHI strings still present verbatim after anonymization
(placeholder operator). Hard negatives: share wrongly overlapped by a finding.

Names: the detector consults no name list (Faker's or other); names are spaCy PERSON
(filtered by the deny lists), proper nouns from spaCy's tagger that are no English word (the
WordNet lemma index shipped with the spaCy model: a dictionary of common words, not of
names), context patterns, and lists and repeats of a found name. Faker names in the
clinical set are unseen values. Its templates are few, though: the clinical figure is optimistic, the Presidio
set is the harder, independent check.

Targets (issue 26, on held-out text): names, places and facilities leak < 2% and not above
Philter's figure; structured identifiers < 0.5%; word retention on PHI-free text >= 0.98;
PHI-free text given a placeholder <= 2%. Hard negatives wrongly redacted < 2% (issue 5).

``--write-recall PATH`` writes the stage's recall per HIPAA Safe Harbor kind (gold types mapped
by instructkit/steps/anonymize/safe_harbor.yaml), per half and set, with the date and revision;
the shipped instructkit/steps/anonymize/measured_recall.json, which the dataset card's Safe
Harbor table reads, is written this way.

    python bench/phi_eval.py [--notes 300] [--synth 1500] [--questions 400] [--no-stock]
                             [--no-philter] [--public 200] [--write-recall PATH]
                             [--synth-splits tune,held-out,all] [--leaks NAME,LOCATION,ADDRESS]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
SYNTH = SHARED / "pii" / "presidio_synth_dataset_v2.json"
EPILOG = """philter-lite anchor: NLTK's English tagger (not on PyPI) must be in $NLTK_DATA as
taggers/averaged_perceptron_tagger_eng/*.json. The nltk/nltk_data repository holds it as
packages/taggers/averaged_perceptron_tagger.zip (a pickle of weights, tagdict, classes):
    python bench/nltk_tagger.py PATH/averaged_perceptron_tagger.zip [--nltk-data DIR]
writes the three JSON files nltk 3.9+ reads. Bench-only: never shipped."""

STRUCTURED = {"DATE", "PHONE", "FAX", "EMAIL", "MRN", "SSN", "URL", "IP", "ZIP", "ID", "ACCOUNT",
              "HEALTH_PLAN", "ACCESSION", "LICENSE", "DEVICE_ID", "VEHICLE_ID", "AGE"}
NAMES_PLACES = {"NAME", "ADDRESS", "LOCATION", "HOSPITAL"}

# ---- the clinical-note set -----------------------------------------------------------------
TEMPLATES = [
    "Patient: {NAME}\nMRN: {MRN}\nDOB: {DOB}\nDate of service: {DATE}\n\nHPI: {NAME_FIRST} is a {AGE_YOUNG}-year-old with {EPONYM} on {DRUG}. Labs: {LAB}, {LAB}.",
    "{NAME} was admitted to {HOSPITAL} on {DATE} with chest pain. {LAB}. Discharged on {DATE2} to home at {ADDRESS}, {CITY}, {STATE} {ZIP}.",
    "Discharge summary for Mr. {LAST}. History of {EPONYM} and {EPONYM2}. Continue {DRUG} and {DRUG2}. Follow up with Dr. {DOCTOR_LAST} at {PHONE}.",
    "Referral from Dr. {DOCTOR} ({EMAIL}, fax {FAX}). The patient, a {AGE_OLD}-year-old woman, lives in {CITY}. {LAB}; {LAB}.",
    "Radiology report. Accession #{ACCESSION}. Exam date {DATE}. Comparison: {DATE2}. Findings consistent with {EPONYM}. Electronically signed by: {DOCTOR}, MD",
    "Ms. {LAST} called on {DATE} from {PHONE} asking about her {DRUG} refill. Insurance member ID: {PLAN}. Account number: {ACCOUNT}.",
    "SSN {SSN}; health plan ID: {PLAN}; patient portal {URL}; last login from IP {IP}. Seen at {HOSPITAL} for {EPONYM}.",
    "Pacemaker serial number: {DEVICE}. Implanted {DATE} at {HOSPITAL}. INR goal 2-3 on {DRUG}; {LAB}.",
    "{NAME} ({AGE_OLD} y/o) with {EPONYM}; daughter {NAME2} can be reached at {PHONE}. Driver's license: {LICENSE}. Vehicle VIN {VIN}.",
    "Clinic note {DATE}. {NAME_FIRST} {LAST} reports improvement on {DRUG}. BP {BP}. Plan: recheck {LAB_NAME} in 3 months. Sincerely, {DOCTOR}",
    "Transferred from {HOSPITAL} ({CITY}, {STATE}) on {DATE}. Address on file: {ADDRESS}, ZIP {ZIP}. Contact: {EMAIL}.",
    "Mr. {LAST}, DOB {DOB}, MRN {MRN}, presented with {EPONYM}. He was started on {DRUG} on {DATE}. Dr. {DOCTOR_LAST} was notified.",
]

EPONYMS = ["Parkinson's disease", "Hodgkin lymphoma", "Down syndrome", "Graves' disease",
           "Crohn's disease", "Alzheimer's disease", "Bell's palsy", "Cushing's syndrome",
           "Addison's disease", "Wilson's disease", "Lyme disease", "Guillain-Barré syndrome",
           "Hashimoto's thyroiditis", "Barrett's esophagus", "Kaposi sarcoma", "Epstein-Barr virus",
           "Tourette syndrome", "Raynaud's phenomenon", "Marfan syndrome", "Huntington's disease",
           "Meniere's disease", "Paget's disease", "Sjögren's syndrome", "Burkitt lymphoma",
           "Ewing sarcoma", "non-Hodgkin lymphoma", "West Nile virus", "Parkinson", "Hodgkin's disease",
           "Murphy's sign", "Glasgow Coma Scale", "Apgar score", "Turner syndrome",
           "Klinefelter syndrome", "Tay-Sachs disease", "Creutzfeldt-Jakob disease"]
DRUGS = ["metformin 500 mg", "atorvastatin 40 mg", "lisinopril 10 mg", "warfarin 5 mg",
         "apixaban 5 mg", "levothyroxine 75 mcg", "insulin glargine 20 units", "amoxicillin 875 mg",
         "furosemide 40 mg", "prednisone 20 mg", "sertraline 50 mg", "levodopa/carbidopa 25/100",
         "omeprazole 20 mg", "amlodipine 5 mg", "Eliquis", "Lasix", "Synthroid", "Ozempic 0.5 mg",
         "gabapentin 300 mg", "hydrochlorothiazide 25 mg", "Keytruda", "rituximab", "Humira"]
LABS = ["HbA1c 7.2%", "Na 138 mmol/L", "K 4.1 mEq/L", "creatinine 1.2 mg/dL", "WBC 11.2 x10^9/L",
        "platelets 250,000/uL", "troponin 0.04 ng/mL", "INR 2.3", "eGFR 58 mL/min/1.73m2",
        "LDL 130 mg/dL", "TSH 2.1 mIU/L", "SpO2 96% on 2 L", "hemoglobin 10.4 g/dL",
        "BNP 450 pg/mL", "glucose 182 mg/dL", "ALT 45 U/L", "lactate 2.1 mmol/L"]
LAB_NAMES = ["HbA1c", "TSH", "lipid panel", "BMP", "CBC", "INR"]


def _date(f, rng, d=None):
    d = d or f.date_between(start_date="-30y", end_date="today")
    fmt = rng.choice(["%m/%d/%Y", "%Y-%m-%d", "%B %d, %Y", "{mon} {day}", "%d %b %y", "{m}/{dd}/%Y",
                      "{month} {ord}", "%b. %d, %Y", "%d %B %Y"])
    ordn = {1: "st", 2: "nd", 3: "rd"}.get(d.day % 10 if d.day not in (11, 12, 13) else 0, "th")
    fmt = fmt.format(mon=d.strftime("%b"), day=d.day, m=d.month, dd=d.day, month=d.strftime("%B"),
                     ord=f"{d.day}{ordn}")
    return d.strftime(fmt)


def _phone(rng):
    a, b, c = rng.randint(201, 989), rng.randint(201, 989), rng.randint(0, 9999)
    return rng.choice([f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}"])


def clinical_notes(n: int = 300, seed: int = 7) -> list[dict]:
    """[{text, spans: [(start, end, type)], negatives: [(start, end)]}] from Faker values."""
    from faker import Faker

    fakers = [Faker(loc) for loc in ("en_US", "en_US", "en_GB", "es_MX", "en_IN", "fr_FR")]
    rng = random.Random(seed)
    notes = []
    for i in range(n):
        f = fakers[i % len(fakers)]
        f.seed_instance(seed * 1000 + i)
        us = fakers[0]
        us.seed_instance(seed * 7919 + i)
        first, last = f.first_name(), f.last_name()
        d1 = us.date_between(start_date="-10y", end_date="today")
        values = {
            "NAME": (f"{first} {last}", "NAME"), "NAME_FIRST": (first, "NAME"), "LAST": (last, "NAME"),
            "NAME2": (f.name(), "NAME"), "DOCTOR": (f"{f.first_name()} {f.last_name()}", "NAME"),
            "DOCTOR_LAST": (f.last_name(), "NAME"),
            "MRN": (str(rng.randint(100000, 99999999)).zfill(rng.choice([7, 8, 9])), "MRN"),
            "DOB": (_date(us, rng, us.date_of_birth(minimum_age=18, maximum_age=89)), "DATE"),
            "DATE": (_date(us, rng, d1), "DATE"), "DATE2": (_date(us, rng), "DATE"),
            "AGE_OLD": (str(rng.randint(90, 104)), "AGE"),
            "PHONE": (_phone(rng), "PHONE"), "FAX": (_phone(rng), "FAX"),
            "EMAIL": (us.email(), "EMAIL"), "SSN": (us.ssn(), "SSN"),
            "ADDRESS": (us.street_address(), "ADDRESS"), "CITY": (us.city(), "LOCATION"),
            "ZIP": (us.zipcode(), "ZIP"), "HOSPITAL": (f"{us.last_name()} {rng.choice(['Memorial Hospital', 'Medical Center', 'Regional Hospital', 'Clinic', 'General Hospital'])}", "HOSPITAL"),
            "URL": (us.url() + f"patients/{rng.randint(100, 999)}", "URL"), "IP": (us.ipv4(), "IP"),
            "ACCOUNT": (str(rng.randint(10**7, 10**10)), "ACCOUNT"),
            "PLAN": (f"{us.lexify('???').upper()}{rng.randint(10**8, 10**9)}", "HEALTH_PLAN"),
            "ACCESSION": (f"{rng.choice(['A', 'RAD', 'CT', ''])}{rng.randint(10**6, 10**9)}", "ACCESSION"),
            "DEVICE": (f"{us.lexify('??').upper()}-{rng.randint(1000, 99999)}", "DEVICE_ID"),
            "LICENSE": (f"{us.lexify('?').upper()}{rng.randint(10**6, 10**8)}", "LICENSE"),
            "VIN": (us.vin() if hasattr(us, "vin") else "1HGCM82633A004352", "VEHICLE_ID"),
        }
        tpl = TEMPLATES[i % len(TEMPLATES)]
        text, spans, negs = "", [], []
        pos = 0
        for m in re.finditer(r"\{(\w+)\}", tpl):
            text += tpl[pos:m.start()]
            key = m.group(1)
            if key in values:
                val, typ = values[key]
                spans.append((len(text), len(text) + len(val), typ))
            else:
                val = {"EPONYM": rng.choice(EPONYMS), "EPONYM2": rng.choice(EPONYMS),
                       "DRUG": rng.choice(DRUGS), "DRUG2": rng.choice(DRUGS), "LAB": rng.choice(LABS),
                       "LAB_NAME": rng.choice(LAB_NAMES), "BP": f"{rng.randint(100, 170)}/{rng.randint(60, 100)}",
                       "STATE": us.state_abbr(), "AGE_YOUNG": str(rng.randint(20, 85))}[key]
                if key not in ("STATE", "AGE_YOUNG"):
                    negs.append((len(text), len(text) + len(val)))
            text += val
            pos = m.end()
        text += tpl[pos:]
        notes.append({"text": text, "spans": spans, "negatives": negs})
    return notes


# ---- the Presidio synthetic set ----------------------------------------------------------------
SYNTH_TYPES = {"PERSON": "NAME", "STREET_ADDRESS": "ADDRESS", "GPE": "LOCATION",
               "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE", "EMAIL_ADDRESS": "EMAIL",
               "ZIP_CODE": "ZIP", "DOMAIN_NAME": "URL", "US_SSN": "SSN", "IP_ADDRESS": "IP",
               "CREDIT_CARD": "ACCOUNT", "IBAN_CODE": "ACCOUNT", "US_DRIVER_LICENSE": "LICENSE",
               "AGE": "AGE"}


def synth_half(template: str) -> str:
    """``tune`` or ``held-out``: the half of the Presidio set a sentence belongs to, by a
    hash of its template's text (the ``masked`` field; two template ids share a text, so
    the text, not the id, is the key). Recognizers are tuned on ``tune`` only; ``held-out``
    sentences come from templates never looked at. hashlib, not hash(): the same split in
    every process."""
    return "tune" if hashlib.sha256(template.encode("utf-8")).digest()[0] % 2 == 0 else "held-out"


def synth_notes(limit: int | None = None) -> list[dict]:
    """Gold PHI spans of the Presidio set, each record with its ``split`` (``synth_half``).
    Not PHI under Safe Harbor and left out: bare years and weekdays (DATE_TIME), ages under
    90, states and countries, organizations, titles, NRP."""
    from instructkit.steps.anonymize.detect import load_recognizer_config

    data = json.loads(SYNTH.read_text(encoding="utf-8"))[:limit]
    # Safe Harbor lets states and countries stay: they are not PHI gold here either
    allowed_places = {p.lower() for p in load_recognizer_config()["safe_harbor_places"]}
    out = []
    for r in data:
        spans, other = [], []
        for s in r["spans"]:
            typ = SYNTH_TYPES.get(s["entity_type"])
            val = s["entity_value"]
            reason = _not_safe_harbor(typ, s["entity_type"], val.strip(), allowed_places)
            if reason:
                EXCLUDED[reason] += 1
            (other if reason else spans).append((s["start_position"], s["end_position"], typ or s["entity_type"]))
        out.append({"text": r["full_text"], "spans": spans, "other": other, "negatives": [],
                    "split": synth_half(r.get("masked") or str(r.get("template_id")))})
    return out


SYNTH_SET = "presidio_synth_v2"

#: gold spans of the Presidio set left out of the targets, by reason (printed)
EXCLUDED: Counter = Counter()


def _not_safe_harbor(typ: str | None, presidio_type: str, val: str, allowed_places: set) -> str | None:
    """Why a gold span is not PHI under HIPAA Safe Harbor (None: it is)."""
    if typ is None:
        return f"{presidio_type} (not one of the 18 identifier kinds)"
    if typ == "DATE" and re.fullmatch(r"(?:\d{4}|[A-Za-z]+day)", val):
        return "DATE_TIME bare year or weekday"
    if typ == "AGE" and not (val.isdigit() and int(val) > 89):
        return "AGE under 90"
    if typ == "LOCATION":
        base = re.sub(r"\s*\(.*\)$", "", val).lower()
        if base in allowed_places:
            return "GPE state or country"
        if re.fullmatch(r"[A-Z]{2}", val):
            return "GPE two-letter state/province code"
        if val.lower() == "nan":
            return "GPE 'nan' (an empty value the generator printed)"
    return None


# ---- scoring ----------------------------------------------------------------------------------
def memoized(detect):
    """``detect`` that analyses each distinct text once (the Presidio set is scored whole
    and by half)."""
    seen: dict[str, list] = {}

    def run(texts: list[str]) -> list[list]:
        todo = list(dict.fromkeys(t for t in texts if t not in seen))
        for t, f in zip(todo, detect(todo) if todo else []):
            seen[t] = f
        return [seen[t] for t in texts]

    return run


def print_leaks(notes: list[dict], detect, types: set[str]) -> None:
    """The gold spans of ``types`` left verbatim, with their type and sentence (a debugging
    aid for synthetic sets only: it prints PHI-shaped values to the terminal)."""
    from instructkit.steps.anonymize.operators import apply_findings

    for note, fnd in zip(notes, detect([n["text"] for n in notes])):
        text = note["text"]
        anon = apply_findings(text, fnd, lambda _o, f: f"[{f.type}]")[0]
        for s, e, typ in note["spans"]:
            val = text[s:e].strip()
            if typ in types and val and re.search(rf"(?<![\w]){re.escape(val)}(?![\w])", anon):
                print(f"LEAK {typ:<9} {val!r:<40} | {anon!r}")


def evaluate(detect, notes: list[dict]) -> dict:
    """Scores of ``detect`` (texts -> findings per text) on gold-annotated notes."""
    from instructkit.steps.anonymize.operators import apply_findings

    texts = [n["text"] for n in notes]
    t0 = time.perf_counter()
    findings = detect(texts)
    secs = time.perf_counter() - t0
    gold_n, gold_hit, leaks = Counter(), Counter(), Counter()
    pred_n, pred_ok = Counter(), Counter()
    neg_n = neg_hit = 0
    for note, fnd in zip(notes, findings):
        text = note["text"]
        anon = apply_findings(text, fnd, lambda _o, f: f"[{f.type}]")[0]
        for s, e, typ in note["spans"]:
            gold_n[typ] += 1
            if any(f.start < e and s < f.end for f in fnd):
                gold_hit[typ] += 1
            val = text[s:e].strip()
            if val and re.search(rf"(?<![\w]){re.escape(val)}(?![\w])", anon):
                leaks[typ] += 1
        allowed = note["spans"] + [(s, e, "") for s, e, _ in note.get("other", [])]
        for f in fnd:
            pred_n[f.type] += 1
            if any(f.start < e and s < f.end for s, e, _ in allowed):
                pred_ok[f.type] += 1
        for s, e in note["negatives"]:
            neg_n += 1
            if any(f.start < e and s < f.end for f in fnd):
                neg_hit += 1
    by_type = {t: {"gold": gold_n[t], "found": gold_hit[t], "recall": round(gold_hit[t] / gold_n[t], 3),
                   "leak_rate": round(leaks[t] / gold_n[t], 3)} for t in sorted(gold_n)}
    for t in sorted(pred_n):
        by_type.setdefault(t, {})["precision"] = round(pred_ok[t] / pred_n[t], 3)
        by_type[t]["predicted"] = pred_n[t]

    def group(types):
        g = sum(gold_n[t] for t in types)
        return {"gold": g, "leak_rate": round(sum(leaks[t] for t in types) / g, 4) if g else None,
                "recall": round(sum(gold_hit[t] for t in types) / g, 4) if g else None}

    return {"records": len(notes), "seconds": round(secs, 2), "by_type": by_type,
            "structured": group(STRUCTURED & set(gold_n)), "names_places": group(NAMES_PLACES & set(gold_n)),
            "precision_all": round(sum(pred_ok.values()) / max(1, sum(pred_n.values())), 3),
            "hard_negatives": {"n": neg_n, "wrongly_redacted": round(neg_hit / neg_n, 4) if neg_n else None}}


def _print(name: str, res: dict) -> None:
    print(f"\n== {name}: {res['records']} texts, detection {res['seconds']} s")
    print(f"{'type':<12} {'gold':>5} {'recall':>7} {'leak':>6} {'pred':>5} {'prec':>6}")
    for t, r in res["by_type"].items():
        print(f"{t:<12} {r.get('gold', 0):>5} {r.get('recall', float('nan')):>7.3f} "
              f"{r.get('leak_rate', float('nan')):>6.3f} {r.get('predicted', 0):>5} {r.get('precision', float('nan')):>6.3f}")
    s, n, h = res["structured"], res["names_places"], res["hard_negatives"]
    print(f"structured identifiers: leak {s['leak_rate']:.2%} (target < 1%), recall {s['recall']:.2%}")
    if n["gold"]:
        print(f"names and locations:    leak {n['leak_rate']:.2%} (target < 5%), recall {n['recall']:.2%}")
    if h["n"]:
        print(f"hard negatives wrongly redacted: {h['wrongly_redacted']:.2%} of {h['n']} (target < 2%)")
    print(f"precision (all findings): {res['precision_all']:.1%}")


DETECTORS = {"ours": "instructkit", "philter": "philter-lite", "stock": "stock Presidio"}


def half_of(set_name: str) -> str | None:
    """``tune`` or ``held-out`` for a set of this bench (None: the whole Presidio set)."""
    if set_name.endswith(", all"):
        return None
    if set_name.endswith(("eval split", "held-out")):
        return "held-out"
    return "tune"


def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}%}"


def _summary(sets: list[str], results: dict, free: dict, detectors: list[str]) -> None:
    print("\n== summary, same texts, same run: leak = share of gold PHI strings left verbatim "
          "(targets: names+places+facilities < 2%, structured < 0.5%)")
    print(f"{'set':<40} {'detector':<15} {'n+p+f leak':>10} {'struct leak':>11} {'prec':>7}")
    for name in sets:
        for i, det in enumerate(detectors):
            r = results[name].get(det)
            if r is None:
                continue
            print(f"{name if i == 0 else '':<40} {DETECTORS[det]:<15} {_pct(r['names_places']['leak_rate']):>10} "
                  f"{_pct(r['structured']['leak_rate']):>11} {r['precision_all']:>7.1%}")
    print("\n== PHI-free text, same texts, same run: words kept (target >= 0.98), texts given a "
          "placeholder (target <= 2%)")
    print(f"{'set':<40} {'detector':<15} {'words kept':>10} {'placeholder':>11}")
    for name, by_det in free.items():
        for i, det in enumerate(detectors):
            r = by_det.get(det)
            if r is None:
                continue
            print(f"{name if i == 0 else '':<40} {DETECTORS[det]:<15} {r['retention']:>10.3f} "
                  f"{_pct(r['with_placeholder'], 1):>11}")
    for half in ("tune", "held-out"):
        cq = next((s for s in sets if s.startswith("clinical questions") and half_of(s) == half), None)
        ps = next((s for s in sets if s.startswith(SYNTH_SET) and half_of(s) == half), None)
        fq = f"clinical questions without PHI, {half}"
        exams = [k for k in free if k.endswith(", " + half) and not k.startswith("clinical")]
        print(f"\n{half} halves ({cq or '-'}; {ps or '-'}; {fq}; {'; '.join(exams) or 'no public set'}):")
        print("| | names + places + facilities leaked (clinical q. / Presidio synth) | structured leaked "
              "(clinical q. / Presidio synth) | PHI-free words kept | PHI-free exam questions given a "
              "placeholder (" + " / ".join(e.rsplit(",", 1)[0] for e in exams) + ") |")
        print("|---|---|---|---|---|")
        for det in detectors:
            def leak(set_name, key):
                r = results.get(set_name, {}).get(det) if set_name else None
                return _pct(r[key]["leak_rate"]) if r else "-"
            kept = free.get(fq, {}).get(det)
            kept_s = f"{kept['retention']:.3f}" if kept else "-"
            ex = " / ".join(_pct(free[e][det]["with_placeholder"], 1) if det in free[e] else "-" for e in exams)
            print(f"| {DETECTORS[det]} | {leak(cq, 'names_places')} / {leak(ps, 'names_places')} | "
                  f"{leak(cq, 'structured')} / {leak(ps, 'structured')} | "
                  f"{kept_s} | {ex or '-'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=300, help="generated clinical notes")
    ap.add_argument("--synth", type=int, default=1500, help="Presidio synthetic sentences (max 1500)")
    ap.add_argument("--questions", type=int, default=400, help="clinical questions per split")
    ap.add_argument("--phi-free", type=int, default=300, help="PHI-free clinical questions per split")
    ap.add_argument("--public", type=int, default=200,
                    help="PHI-free public texts per half and set (MedQA, MedText; 0: all)")
    ap.add_argument("--splits", default="tune,eval", help="clinical-question splits to run")
    ap.add_argument("--no-stock", action="store_true", help="skip stock Presidio")
    ap.add_argument("--no-philter", action="store_true", help="skip the philter-lite anchor")
    ap.add_argument("--name-model", default="rampart", help="the second name model (rampart, or none)")
    ap.add_argument("--no-notes", action="store_true", help="skip the issue-5 clinical notes")
    ap.add_argument("--quiet", action="store_true", help="only the summary tables")
    ap.add_argument("--synth-splits", default="tune,held-out,all",
                    help="halves of the Presidio set to score (tune, held-out, all)")
    ap.add_argument("--leaks", default=None, metavar="TYPES",
                    help="print the leaked gold spans of these types (comma-separated, e.g. "
                         "NAME,LOCATION,ADDRESS) on the Presidio set's tune half and stop")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--write-recall", type=Path, metavar="PATH",
                    help="write the stage's recall per HIPAA Safe Harbor kind, per half and set, "
                         "to PATH (the shipped file: instructkit/steps/anonymize/measured_recall.json)")
    args = ap.parse_args()
    from clinical_phi_set import clinical_set, phi_free_set
    from phi_anchors import (measured_recall, philter_detector, philter_status, phi_free_public,
                             placeholder_share, stock_detector)

    from instructkit.steps.anonymize.step import AnonymizeStep

    stage = AnonymizeStep("placeholder", canary=False,
                          name_model=None if args.name_model == "none" else args.name_model)
    detect = {"ours": memoized(stage.detector.detect_many)}
    if args.leaks:
        print_leaks([n for n in synth_notes(args.synth) if n["split"] == "tune"], detect["ours"],
                    set(args.leaks.split(",")))
        return
    if not args.no_philter:
        absent = philter_status()
        if absent:
            print(absent)
        else:
            detect["philter"] = memoized(philter_detector())
    if not args.no_stock:
        detect["stock"] = memoized(stock_detector())
    detectors = list(detect)
    sets = {} if args.no_notes else {"clinical notes (generated, issue 5)": clinical_notes(args.notes)}
    for split in filter(None, args.splits.split(",")):
        sets[f"clinical questions, {split} split"] = clinical_set(split, args.questions)
    if SYNTH.exists():
        synth = synth_notes(args.synth)
        for split in filter(None, args.synth_splits.split(",")):
            sets[f"{SYNTH_SET}, {split}"] = [n for n in synth if split in ("all", n["split"])]
    else:
        print(f"{SYNTH} absent: skipped the Presidio set")
    results: dict = {}
    for name, notes in sets.items():
        results[name] = {det: evaluate(d, notes) for det, d in detect.items()}
        if not args.quiet:
            for det in detectors:
                _print(f"{name} - {DETECTORS[det]}", results[name][det])
    free_sets = {f"clinical questions without PHI, {h}": phi_free_set(split, args.phi_free)
                 for h, split in (("tune", "tune"), ("held-out", "eval"))}
    free_sets.update(phi_free_public(args.public))
    free = {name: {det: placeholder_share(d, texts) for det, d in detect.items()}
            for name, texts in free_sets.items()}
    if not args.quiet:
        for name, by_det in free.items():
            for det, r in by_det.items():
                if r["top"]:
                    print(f"  placeholders on {name} ({DETECTORS[det]}): " + "; ".join(r["top"]))
    if any(k.startswith(SYNTH_SET) for k in results) and not args.quiet:
        print("\ngold spans of the Presidio set left out of the targets (not PHI under HIPAA Safe "
              "Harbor; a finding on them is not counted as a false positive):")
        for reason, n in sorted(EXCLUDED.items(), key=lambda kv: -kv[1]):
            print(f"  {n:>5}  {reason}")
    _summary(list(sets), results, free, detectors)
    if args.json:
        args.json.write_text(json.dumps({"sets": results, "phi_free": free}, indent=2))
    if args.write_recall:
        from instructkit.dataset.safe_harbor import load_safe_harbor

        sh = load_safe_harbor()
        gold_kind = {t: kinds[0] for t, kinds in sh["detector_types"].items()}
        gold_kind.update(sh.get("gold_types") or {})
        halves = {name: half_of(name) for name in sets if half_of(name)}
        out = measured_recall(results, halves, gold_kind, anchors=tuple(detectors))
        out["settings"] = {"name_model": args.name_model, "notes": args.notes, "questions": args.questions,
                           "synth": args.synth}
        args.write_recall.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote per-kind recall to {args.write_recall}")


if __name__ == "__main__":
    main()
