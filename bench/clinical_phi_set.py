"""A generated clinical PHI set: short clinician questions and notes with known PHI spans.

What a hospital team types into a de-identification tool: a question about a patient, a
line of a note or a referral, with the patient's name, the hospital or clinic (official,
short, informal, abbreviated, hyphenated, misspelt or in lower case), prefixed record
numbers ("MRN: #AB-123456", "(MRN #XY12345)"), insurance plan and member ids, e-mails,
unique ids, phones and dates. The clinical words around them are the hard part for a
detector: lettered answer lists ("A. Psoriatic arthritis"), organisms ("Staphylococcus
aureus"), lab names ("Leukocyte count"), eponyms and drugs; those must stay.

Every value is drawn by a seeded generator, never typed in as a list to tune against:
  * facilities: rows of ../shared/data/gazetteers/cms_hospitals.csv, rewritten here into the
    forms people write by this module's own rules (independent of the detector's
    normaliser), plus facilities that are in no list (Faker surnames and towns + a kind);
  * names: Faker, with locales split between the two splits;
  * identifiers, dates, phones, e-mails: random shapes.

Two splits keep tuning apart from evaluation: ``tune`` and ``eval`` use different seeds,
different halves of the CMS list (by provider id), different Faker locales for names and
towns, and different halves of the sentence frames. Tune the detector on ``tune`` only;
report ``eval``.

``clinical_set(split, n)`` -> [{text, spans: [(start, end, type)], negatives: [(start, end)]}]
``phi_free_set(split, n)`` -> [str]: clinical text without PHI (for word retention)
"""

from __future__ import annotations

import csv
import os
import hashlib
import random
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CMS = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "gazetteers" / "cms_hospitals.csv"

SPLITS = {
    "tune": {"seed": 101, "locales": ("en_US", "en_GB", "es_MX", "de_DE", "en_IN"), "half": 0},
    "eval": {"seed": 202, "locales": ("en_US", "fr_FR", "it_IT", "pt_BR", "nl_NL", "pl_PL", "en_AU"),
             "half": 1},
}


# ---- facilities --------------------------------------------------------------------------
@cache
def _cms_rows(half: int) -> tuple[tuple[str, str], ...]:
    if not CMS.exists():
        return ()
    with CMS.open(encoding="utf-8") as fh:
        rows = [(r["hospital_name"], r["city"]) for r in csv.DictReader(fh)
                if int(hashlib.sha256(r["provider_id"].encode()).hexdigest(), 16) % 2 == half]
    return tuple(rows)


_KIND_WORDS = ("HOSPITAL", "HOSPITALS", "MEDICAL", "CENTER", "CTR", "HEALTH", "HEALTHCARE",
               "CLINIC", "CLINICS", "SYSTEM", "CARE", "HOSP", "MED", "INC", "LLC", "CAH", "CAMPUS")
_SHORTEN = {"SAINT": "St.", "ST": "St.", "MOUNT": "Mt.", "MEDICAL": "Med", "CENTER": "Ctr",
            "HOSPITAL": "Hosp", "UNIVERSITY": "Univ", "REGIONAL": "Reg'l", "MEMORIAL": "Mem",
            "COMMUNITY": "Comm", "GENERAL": "Gen", "AND": "&"}
_STATE_SHORT = {"MASSACHUSETTS": "Mass", "PENNSYLVANIA": "Penn", "CALIFORNIA": "Cal",
                "MICHIGAN": "Mich", "WASHINGTON": "Wash", "MINNESOTA": "Minn", "TENNESSEE": "Tenn"}


def _title(w: str) -> str:
    if w in ("OF", "AND", "AT", "THE", "FOR"):
        return w.lower()
    if re.fullmatch(r"[A-Z]{2,4}", w) and not re.search(r"[AEIOUY]", w):
        return w  # an acronym: UPMC, CHI
    return "-".join(p[:1] + p[1:].lower() for p in w.split("-")).replace("'S", "'s")


def _misspell(word: str, rng: random.Random) -> str:
    if len(word) < 6:
        return word
    i = rng.randrange(1, len(word) - 2)
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "drop":
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def facility_form(official: str, rng: random.Random) -> str:
    """One way a person writes this CMS hospital name."""
    name = re.sub(r",\s*THE$|^THE\s+", "", official.strip())
    name = re.sub(r"\s+(?:INC|LLC|CAH|\d+)$", "", name)
    words = name.split()
    core = list(words)
    while core and core[-1] in _KIND_WORDS:
        core.pop()
    core = core or words
    style = rng.choice(("official", "official", "core", "core", "core", "short", "acronym",
                        "lower", "hyphen", "misspelt", "state_short"))
    if style == "official":
        return " ".join(_title(w) for w in words)
    if style == "core":
        return " ".join(_title(w) for w in core)
    if style == "short":
        return " ".join(_SHORTEN.get(w, _title(w)) for w in words)
    if style == "acronym":
        letters = "".join(w[0] for w in words if w not in ("OF", "AND", "THE", "AT", "&", "-"))
        return letters if 3 <= len(letters) <= 6 else " ".join(_title(w) for w in core)
    if style == "lower":
        return " ".join(core).lower()
    if style == "hyphen":
        text = " ".join(_title(w) for w in core)
        if "-" in text:
            return text.replace("-", " ")
        return text.replace(" ", "-", 1) if " " in text else text
    if style == "misspelt":
        i = max(range(len(core)), key=lambda j: len(core[j]))
        out = [_title(w) for w in core]
        out[i] = _misspell(out[i], rng)
        return " ".join(out)
    out = [_STATE_SHORT.get(w, _title(w)) for w in core]
    return " ".join(out)


def _unlisted_facility(fk, rng: random.Random) -> str:
    """A facility in no list: a surname or town and a kind ("Okafor Family Clinic")."""
    base = rng.choice((fk.last_name(), fk.city(), f"{fk.last_name()}-{fk.last_name()}"))
    kind = rng.choice(("Clinic", "Family Practice", "Urgent Care", "Medical Group", "Dialysis Center",
                       "Women's Health", "Pediatrics", "Cardiology Associates", "Surgical Center",
                       "Rehab", "Health Center", "Hospital"))
    return f"{base} {kind}"


# ---- identifiers --------------------------------------------------------------------------
def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(n))


def _digits(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(lo, hi)))


def _record_number(rng: random.Random) -> str:
    return rng.choice((
        _digits(rng, 6, 10), f"{_letters(rng, 2)}-{_digits(rng, 5, 8)}", f"{_letters(rng, 2)}{_digits(rng, 5, 8)}",
        f"{_letters(rng, 1)}{_digits(rng, 6, 9)}", f"{_digits(rng, 3, 3)}-{_digits(rng, 3, 4)}-{_digits(rng, 2, 4)}",
        f"{_digits(rng, 2, 3)}{_letters(rng, 1)}{_digits(rng, 4, 6)}"))


def _mrn_mention(rng: random.Random) -> tuple[str, str]:
    """(prefix, value): the value is the gold span; the prefix is the label around it."""
    label = rng.choice(("MRN", "MRN", "MR#", "Medical record number", "med rec #", "MRN no.",
                        "Chart #", "Hospital #", "medical record", "mrn"))
    sep = rng.choice((": ", " ", ": #", " #", "# ", ":#", " # ", " - ", "#"))
    return label + sep, _record_number(rng)


def _plan_mention(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(("insurance plan", "plan ID", "Plan ID", "member ID", "Member #", "policy",
                        "policy number", "policy #", "subscriber ID", "insurance ID", "Medicaid ID",
                        "Medicare #", "group number", "health plan no.", "member id", "BCBS ID",
                        "ins. ID", "policy no", "Member ID#"))
    sep = rng.choice((": ", " ", " #", ": #", "# ", " is "))
    value = rng.choice((
        f"{_letters(rng, 3)}{_digits(rng, 8, 10)}", f"W{_digits(rng, 9, 9)}",
        f"{_digits(rng, 1, 1)}{_letters(rng, 2)}{_digits(rng, 1, 1)}-{_letters(rng, 2)}{_digits(rng, 1, 1)}-{_letters(rng, 2)}{_digits(rng, 2, 2)}",
        _digits(rng, 8, 12), f"{_letters(rng, 2)}-{_digits(rng, 6, 9)}", f"{_letters(rng, 1)}{_digits(rng, 7, 9)}{_letters(rng, 1)}"))
    return label + sep, value


def _unique_id_mention(rng: random.Random) -> tuple[str, str, str]:
    label, typ = rng.choice((("patient ID", "ID"), ("Pt ID", "ID"), ("encounter #", "ID"), ("CSN", "ID"),
                             ("FIN", "ID"), ("visit ID", "ID"), ("study ID", "ID"), ("case #", "ID"),
                             ("accession no.", "ACCESSION"), ("acc#", "ACCESSION"), ("order #", "ACCESSION"),
                             ("specimen ID", "ACCESSION"), ("account #", "ACCOUNT"), ("acct no", "ACCOUNT"),
                             ("claim #", "ACCOUNT"), ("ID", "ID"), ("unique ID", "ID"), ("ref #", "ID")))
    sep = rng.choice((": ", " ", " #", ": #", " = "))
    return label + sep, _record_number(rng), typ


def _email(fk, rng: random.Random, first: str, last: str) -> str:
    clean = lambda s: re.sub(r"[^a-z]", "", s.lower()) or "pt"  # noqa: E731
    user = rng.choice((f"{clean(first)}.{clean(last)}", f"{clean(first)[0]}{clean(last)}",
                       f"{clean(last)}{rng.randint(1, 99)}", f"{clean(first)}_{clean(last)}+portal",
                       fk.user_name()))
    domain = rng.choice((fk.free_email_domain(), fk.domain_name(), f"{clean(last)}.health",
                         f"mail.{fk.domain_word()}.org", f"{fk.domain_word()}.edu"))
    email = f"{user}@{domain}"
    return email.upper() if rng.random() < 0.08 else email


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1935, 2025), rng.randint(1, 12), rng.randint(1, 28)
    mon = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")[m - 1]
    return rng.choice((f"{m}/{d}/{y}", f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{mon} {d}, {y}",
                       f"{d} {mon[:3]} {y}", f"{mon[:3]} {d}", f"{m}/{d}/{str(y)[2:]}", f"{mon} {d}"))


def _phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(201, 989), rng.randint(0, 9999)
    return rng.choice((f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"{a} {b} {c:04d}"))


# ---- clinical words that must stay ----------------------------------------------------------
ORGANISMS = ("Staphylococcus aureus", "Escherichia coli", "Klebsiella pneumoniae", "Pseudomonas aeruginosa",
             "Streptococcus pneumoniae", "Enterococcus faecalis", "Candida albicans", "Clostridioides difficile",
             "Haemophilus influenzae", "Neisseria meningitidis", "Listeria monocytogenes", "Proteus mirabilis")
LABS = ("Leukocyte count", "Hemoglobin", "Platelet count", "Serum sodium", "Creatinine", "Troponin I",
        "Lactate", "Ferritin", "Procalcitonin", "Alkaline phosphatase", "Erythrocyte sedimentation rate",
        "Anion gap", "Reticulocyte count")
DIAGNOSES = ("Psoriatic arthritis", "Intubation with mechanical ventilation", "Septic arthritis",
             "Reactive arthritis", "Gout", "Pseudogout", "Lyme disease", "Rheumatoid arthritis",
             "Cardiac tamponade", "Tension pneumothorax", "Aortic dissection", "Pulmonary embolism",
             "Hashimoto thyroiditis", "Graves disease", "Addison disease", "Cushing syndrome",
             "Guillain-Barre syndrome", "Kawasaki disease", "Henoch-Schonlein purpura", "Wegener granulomatosis",
             "Observation and reassurance", "Colonoscopy", "Emergency laparotomy", "Lumbar puncture",
             "Intravenous ceftriaxone", "Oral prednisone", "Bronchoscopy", "Echocardiography")
DRUGS = ("metformin", "apixaban", "Eliquis", "warfarin", "vancomycin", "piperacillin-tazobactam",
         "Keppra", "levetiracetam", "Lasix", "furosemide", "Humira", "adalimumab", "methotrexate",
         "ceftriaxone", "Zosyn", "insulin glargine", "Ozempic", "Bactrim")

# ---- sentence frames: {slot} is PHI, <slot> is a clinical word (a hard negative) ------------
FACILITY_FRAMES = (
    "seen at {FAC}", "treated at {FAC}", "admitted to {FAC}", "referred to {FAC}", "followed at {FAC}",
    "transferred from {FAC}", "discharged from {FAC}", "f/u at {FAC}", "was at {FAC} last week",
    "had surgery at {FAC}", "went to {FAC} ED", "outside records from {FAC}", "presented to {FAC}",
    "was hospitalized at {FAC}", "seen in clinic at {FAC}", "transferred to {FAC}",
    "{FAC} discharge summary says", "per {FAC} notes", "being followed by {FAC}", "evaluated at {FAC}",
)
OPENERS = (
    "Pt {NAME} ({MRN}) {FACCTX} on {DATE} with <DX>; what is the next step?",
    "{NAME}, DOB {DATE}, {MRN}, {FACCTX} for <DX>. Should we continue <DRUG>?",
    "Question about my patient {NAME} {FACCTX}: <LAB> was low on {DATE}. Repeat it?",
    "Mr. {LAST} {FACCTX} on {DATE}; cultures grew <ORG>. {PLAN}. Which antibiotic?",
    "Ms. {LAST} ({MRN}) {FACCTX}. Insurance denied <DRUG>; {PLAN}. Appeal to {EMAIL}?",
    "{NAME} {FACCTX} on {DATE}. Call back at {PHONE}. <LAB> pending, {UID}.",
    "Hi, this is about {NAME} ({UID}). She {FACCTX} and needs <DX> workup. {MRN}.",
    "Can you check {NAME}'s labs? {MRN}, {FACCTX} {DATE}. <LAB> and <LAB2>.",
    "{FIRST} {FACCTX} for <DX>; spouse {NAME2} at {PHONE} or {EMAIL}.",
    "Referral: {NAME}, {PLAN}, {MRN}. Previously {FACCTX} on {DATE}. Dx: <DX>.",
    "Dr. {DOCTOR} {FACCTX2} wants to know if <DRUG> is safe with <DRUG2> for {NAME}.",
    "pt {LOWERNAME} {FACCTX} {DATE}, {MRN}. <ORG> bacteremia, on <DRUG>.",
    "Note for {NAME} ({UID}): {FACCTX} on {DATE}. Options: A. <DX> B. <DX2> C. <DX3>. Which fits?",
    "{NAME} {FACCTX}; {PLAN}; contact {EMAIL}. Differential: (A) <DX> (B) <DX2>.",
)
QUESTIONS_NO_PHI = (
    "Which is the best next step? A. <DX> B. <DX2> C. <DX3> D. <DX4>",
    "Cultures grew <ORG>; <LAB> was elevated. Should we start <DRUG> or <DRUG2>?",
    "A. <DX>\nB. <DX2>\nC. <DX3>\nD. <DX4>\nAnswer: B. <DX2>",
    "<LAB> 14.2 and <LAB2> low on day 3. Is <DX> likely, or is it <DX2>?",
    "The patient was admitted to the ICU and seen at the bedside; <ORG> was isolated. Continue <DRUG>?",
    "Referred to Cardiology for <DX>. Followed at the clinic every 3 months on <DRUG>.",
    "(A) <DX> (B) <DX2> (C) <DX3> - which is most consistent with <ORG> infection?",
    "Transferred to the floor after <DX>. <LAB> normal. Discharge on <DRUG> 5 mg daily?",
    "Options: A. <DX>; B. <DX2>; C. <DX3>. The attending favours C. <DX3>.",
    "Seen in the emergency department with <DX>; <LAB> and <LAB2> were sent. <ORG> on blood culture.",
)


def _split_frames(frames: tuple[str, ...], half: int) -> tuple[str, ...]:
    """Half the frames for each split (every other one), so eval phrasing is unseen."""
    mine = tuple(f for i, f in enumerate(frames) if i % 2 == half)
    return mine or frames


def _hard(rng: random.Random, slot: str) -> str:
    base = slot.rstrip("234")
    return rng.choice({"DX": DIAGNOSES, "DRUG": DRUGS, "LAB": LABS, "ORG": ORGANISMS}[base])


class _Builder:
    def __init__(self) -> None:
        self.text = ""
        self.spans: list[tuple[int, int, str]] = []
        self.negatives: list[tuple[int, int]] = []

    def add(self, s: str, typ: str | None = None, negative: bool = False) -> None:
        if typ:
            self.spans.append((len(self.text), len(self.text) + len(s), typ))
        elif negative:
            self.negatives.append((len(self.text), len(self.text) + len(s)))
        self.text += s


def _fill(frame: str, values: dict, rng: random.Random, b: _Builder) -> None:
    pos = 0
    for m in re.finditer(r"\{(\w+)\}|<(\w+)>", frame):
        b.add(frame[pos:m.start()])
        if m.group(1):
            val = values[m.group(1)]
            if callable(val):
                val(b)
            else:
                b.add(val[0], val[1])
        else:
            b.add(_hard(rng, m.group(2)), negative=True)
        pos = m.end()
    b.add(frame[pos:])


def _stable(fk):
    """A Faker whose draws do not depend on PYTHONHASHSEED: some locales (it_IT) build their
    city list from a set, whose order is the string hash's; sorted, a seeded draw is the
    same in every process."""
    for provider in fk.get_providers():
        for attr in ("cities",):
            values = getattr(provider, attr, None)
            if isinstance(values, list):
                setattr(provider, attr, sorted(values))
    return fk


def clinical_set(split: str = "eval", n: int = 400) -> list[dict]:
    """Generated clinical questions with gold PHI spans and hard negatives."""
    from faker import Faker

    conf = SPLITS[split]
    rng = random.Random(conf["seed"])
    fakers = [_stable(Faker(loc)) for loc in conf["locales"]]
    for i, fk in enumerate(fakers):
        fk.seed_instance(conf["seed"] * 100 + i)
    cms = _cms_rows(conf["half"])
    fac_frames = _split_frames(FACILITY_FRAMES, conf["half"])
    openers = OPENERS  # every opener in both: the slots inside them differ per split
    notes = []
    for i in range(n):
        fk = fakers[i % len(fakers)]
        us = fakers[0]
        first, last = fk.first_name(), fk.last_name()

        def facility() -> str:
            if cms and rng.random() < 0.8:
                return facility_form(rng.choice(cms)[0], rng)
            return _unlisted_facility(fk, rng)

        def fac_ctx(b: _Builder, frame: str | None = None) -> None:
            frame = frame or rng.choice(fac_frames)
            pre, post = frame.split("{FAC}")
            b.add(pre)
            b.add(facility(), "HOSPITAL")
            b.add(post)

        def labelled(maker):
            def put(b: _Builder) -> None:
                out = maker(rng)
                label, value = out[0], out[1]
                typ = out[2] if len(out) > 2 else None
                wrap = rng.random() < 0.25 and not b.text.endswith("(")
                b.add(("(" if wrap else "") + label)
                b.add(value, typ or ("MRN" if maker is _mrn_mention else "HEALTH_PLAN"))
                b.add(")" if wrap else "")
            return put

        values = {
            "NAME": (f"{first} {last}", "NAME"), "FIRST": (first, "NAME"), "LAST": (last, "NAME"),
            "LOWERNAME": (f"{first} {last}".lower(), "NAME"), "NAME2": (fk.name(), "NAME"),
            "DOCTOR": (f"{fk.last_name()}", "NAME"),
            "DATE": (_date(rng), "DATE"), "PHONE": (_phone(rng), "PHONE"),
            "EMAIL": (_email(us, rng, first, last), "EMAIL"),
            "MRN": labelled(_mrn_mention), "PLAN": labelled(_plan_mention), "UID": labelled(_unique_id_mention),
            "FACCTX": fac_ctx, "FACCTX2": lambda b: fac_ctx(b, rng.choice(("at {FAC}", "from {FAC}", "of {FAC}"))),
        }
        b = _Builder()
        _fill(rng.choice(openers), values, rng, b)
        if rng.random() < 0.35:
            b.add(" ")
            _fill(rng.choice(QUESTIONS_NO_PHI), values, rng, b)
        notes.append({"text": b.text, "spans": b.spans, "negatives": b.negatives})
    return notes


def phi_free_set(split: str = "eval", n: int = 300) -> list[str]:
    """Clinical questions with no PHI (hard negatives only), for word retention."""
    rng = random.Random(SPLITS[split]["seed"] + 1)
    out = []
    for _ in range(n):
        b = _Builder()
        _fill(rng.choice(QUESTIONS_NO_PHI), {}, rng, b)
        if rng.random() < 0.5:
            b.add(" ")
            _fill(rng.choice(QUESTIONS_NO_PHI), {}, rng, b)
        out.append(b.text)
    return out


if __name__ == "__main__":
    import sys

    split = sys.argv[1] if len(sys.argv) > 1 else "tune"
    for note in clinical_set(split, int(sys.argv[2]) if len(sys.argv) > 2 else 20):
        print(note["text"])
        print("   ", [(note["text"][s:e], t) for s, e, t in note["spans"]])
