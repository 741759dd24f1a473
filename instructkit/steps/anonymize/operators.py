"""What a PHI span becomes: a typed placeholder, a consistent surrogate, or a salted hash.

An operator is made once per record (``Operator.for_record``) so that surrogates stay
consistent inside the record: the same original becomes the same surrogate in the
instruction, input, output, messages and context, and every date in the record moves by
the same number of days, so intervals between dates survive.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import random
import re
from typing import Any

from instructkit._resources import require
from instructkit.steps.anonymize.detect import load_recognizer_config
from instructkit.steps.anonymize.findings import Finding
from instructkit.steps.anonymize.normalize import normalize

__all__ = ["OPERATORS", "make_operator", "apply_findings", "shift_date_text"]

OPERATORS = ("placeholder", "surrogate", "hash")


def apply_findings(text: str, findings: list[Finding], replace) -> tuple[str, list[tuple[int, int, str]]]:
    """Replace each finding with ``replace(original, finding)``; return the new text and the
    (start, end, type) of every replacement in the new text."""
    out: list[str] = []
    spans: list[tuple[int, int, str]] = []
    pos = 0
    length = 0
    for f in findings:
        out.append(text[pos:f.start])
        length += f.start - pos
        new = replace(text[f.start:f.end], f)
        out.append(new)
        spans.append((length, length + len(new), f.type))
        length += len(new)
        pos = f.end
    out.append(text[pos:])
    return "".join(out), spans


class PlaceholderOperator:
    name = "placeholder"

    def for_record(self, record_key: str) -> "PlaceholderOperator":
        return self

    def __call__(self, original: str, finding: Finding) -> str:
        return f"[{finding.type}]"


class HashOperator:
    """``[TYPE:digest]``: the same value gives the same digest within a run (or across runs
    that share ``salt``); the salt keeps short values such as dates from being brute-forced."""

    name = "hash"

    def __init__(self, salt: str) -> None:
        self.salt = salt.encode("utf-8")

    def for_record(self, record_key: str) -> "HashOperator":
        return self

    def __call__(self, original: str, finding: Finding) -> str:
        # the same value written another way (entities, spelled out) gets the same digest
        norm = re.sub(r"\W+", "", normalize(original).text).lower()
        digest = hashlib.sha256(self.salt + finding.type.encode() + b"\0" + norm.encode()).hexdigest()
        return f"[{finding.type}:{digest[:10]}]"


class SurrogateOperator:
    """Faker surrogates, seeded per record (``seed`` + the record's id)."""

    name = "surrogate"

    def __init__(self, seed: int, max_shift_days: int = 365) -> None:
        faker_mod = require("faker", "anonymize", "surrogate values")
        self.faker = faker_mod.Faker("en_US")
        self.seed = seed
        self.max_shift_days = max_shift_days

    def for_record(self, record_key: str) -> "_RecordSurrogates":
        n = int.from_bytes(hashlib.sha256(f"{self.seed}:{record_key}".encode()).digest()[:8], "big")
        return _RecordSurrogates(self.faker, n, self.max_shift_days)


class _RecordSurrogates:
    def __init__(self, faker: Any, seed: int, max_shift_days: int) -> None:
        self.faker = faker
        self.faker.seed_instance(seed)
        self.rng = random.Random(seed)
        # at least a month either way, so that a month-and-year date changes too
        self.shift_days = self.rng.choice((-1, 1)) * self.rng.randint(min(30, max_shift_days), max_shift_days)
        self.memo: dict[tuple[str, str], str] = {}
        self.name_tokens: dict[str, str] = {}

    def __call__(self, original: str, finding: Finding) -> str:
        # a value found in a normalised form (entities, zero-width characters, spelled-out
        # digits) gets a surrogate of its plain form; a decoded run (base64) or a value the
        # surrogate would leave as it was gets the placeholder: a look-alike written into an
        # encoding could keep the original's characters
        plain = normalize(original)
        if plain.encoded:
            return f"[{finding.type}]"
        value = plain.text.strip() if plain.changed else original
        key = (finding.type, re.sub(r"\s+", " ", value.strip()).lower())
        if key not in self.memo:
            made = self._make(value, finding.type)
            # (an age over 89 written as 90 is the Safe Harbor aggregate itself)
            self.memo[key] = f"[{finding.type}]" if made == value and finding.type != "AGE" else made
        return self.memo[key]

    # -- per type -------------------------------------------------------------------------
    def _make(self, original: str, typ: str) -> str:
        f, rng = self.faker, self.rng
        if typ == "NAME":
            return self._name(original)
        if typ == "DATE":
            # a date we cannot parse is not guessed at: it gets the placeholder
            return shift_date_text(original, self.shift_days) or "[DATE]"
        if typ == "AGE":
            return re.sub(r"\d+", "90", original) if re.search(r"\d", original) else "ninety"
        if typ == "PHONE":
            # area code, then the fictional 555-01xx range: never a real subscriber
            digits = f"{rng.randint(201, 989)}55501{rng.randint(0, 99):02d}"
            return _fill_digits(original, digits, rng)
        if typ == "SSN":
            # areas 900-999 are never issued as SSNs
            return _fill_digits(original, f"9{rng.randint(0, 99):02d}{rng.randint(1, 99):02d}"
                                          f"{rng.randint(1, 9999):04d}", rng)
        if typ == "EMAIL":
            return f"{f.user_name()}@example.{rng.choice(['com', 'org', 'net'])}"
        if typ == "URL":
            return f"https://www.example.{rng.choice(['com', 'org', 'net'])}/{f.slug()}"
        if typ == "IP":
            net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])  # documentation ranges
            return f"{net}.{rng.randint(1, 254)}"
        if typ == "ADDRESS":
            return f.street_address()
        if typ == "LOCATION":
            return f.city()
        if typ == "ZIP":
            return _fill_digits(original, f.zipcode_plus4().replace("-", ""), rng)
        if typ == "HOSPITAL":
            kind = re.search(r"(Hospitals?|Medical Cent(?:er|re)|Health Cent(?:er|re)|Clinic|"
                             r"Infirmary|Health System|Health ?[Cc]are|Nursing Home|"
                             r"Rehabilitation Cent(?:er|re)|Cancer Cent(?:er|re)|Hospice|"
                             r"Medical Group|Memorial|Health)\s*$", original)
            return f"{f.last_name()} {kind.group(1) if kind else 'Hospital'}"
        # record numbers and other identifiers: same shape, new characters
        return _shape_like(original, rng)

    def _name(self, original: str) -> str:
        parts = re.split(r"(\s+|,\s*)", original)
        n_words = sum(1 for p in parts if p and not re.fullmatch(r"\s+|,\s*", p))
        comma_first = "," in original  # "Smith, John": the family name comes first
        out, i = [], 0
        for p in parts:
            if not p or re.fullmatch(r"\s+|,\s*", p):
                out.append(p)
                continue
            i += 1
            low = p.lower().strip(".")
            if len(low) <= 1:  # an initial
                out.append(self.rng.choice("ABCDEFGHJKLMNPRSTW") + ("." if p.endswith(".") else ""))
                continue
            if low not in self.name_tokens:
                # a lone word or the family-name position gets a family name
                family = n_words == 1 or (i == 1 if comma_first else i == n_words)
                self.name_tokens[low] = self.faker.last_name() if family else self.faker.first_name()
            new = self.name_tokens[low]
            out.append(new.upper() if p.isupper() and len(p) > 1 else new)
        return "".join(out)


def _fill_digits(original: str, digits: str, rng: random.Random) -> str:
    """Write ``digits`` into the digit positions of ``original`` (keeps its punctuation);
    extra positions get random digits. A leading "+1"/"1" country code is kept."""
    it = iter(digits)
    lead = re.match(r"\+?1(?=[\s.-])", original)
    out = list(original[:lead.end()]) if lead else []
    for ch in original[lead.end() if lead else 0:]:
        out.append(next(it, str(rng.randint(0, 9))) if ch.isdigit() else ch)
    return "".join(out)


def _shape_like(original: str, rng: random.Random) -> str:
    out = []
    for ch in original:
        if ch.isdigit():
            out.append(str(rng.randint(0, 9)))
        elif ch.isalpha() and ch.isascii():
            c = rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
            out.append(c if ch.isupper() else c.lower())
        else:
            out.append(ch)
    return "".join(out)


# -- dates -------------------------------------------------------------------------------------
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9


def _date_regexes() -> list[re.Pattern[str]]:
    cfg = load_recognizer_config()
    from instructkit.steps.anonymize.detect import expand

    frags = {k: expand(v, cfg["fragments"]) for k, v in cfg["fragments"].items()}
    found = [re.compile(expand(p["regex"], frags)) for p in cfg["patterns"] if p.get("date")]
    # the bare forms of the patterns that need a context word ("on 3/14", "DOB 19520314")
    return found + [re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})"),
                    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")]


_DATE_RES: list[re.Pattern[str]] | None = None


def shift_date_text(text: str, days: int) -> str | None:
    """``text`` (a date in any recognised format) moved by ``days``, written the same way;
    None when it cannot be parsed. "03/14/1952" +3 -> "03/17/1952"; "March 3rd" -> "March 6th"."""
    global _DATE_RES
    if _DATE_RES is None:
        _DATE_RES = _date_regexes()
    for rx in _DATE_RES:
        for m in rx.finditer(text):
            s, e = m.span("phi") if "phi" in rx.groupindex else m.span()
            if (s, e) != (0, len(text)):
                continue
            return _shift_match(text, m, days)
    return None


def _shift_match(text: str, m: re.Match[str], days: int) -> str | None:
    g = m.groupdict()
    mon_txt, d_txt, y_txt = g.get("mon"), g.get("d"), g.get("y")
    month = _MONTHS.get(mon_txt.lower().rstrip(".")) if mon_txt else (int(g["m"]) if g.get("m") else None)
    if not month:
        return None
    if y_txt:
        year = int(y_txt)
        if len(y_txt) == 2:
            year += 2000 if year <= dt.date.today().year % 100 else 1900
    else:
        year = 2000  # a leap year, so 29 February can be shifted
    day = int(d_txt) if d_txt else 15
    try:
        new = dt.date(year, month, day) + dt.timedelta(days=days)
    except ValueError:
        return None
    if not d_txt:
        # month and year only: move by whole months as the day would
        new = dt.date(new.year, new.month, 1)
    repl: dict[str, str] = {}
    nums = [x for x in (g.get("m"), d_txt) if x]
    # zero-padded when the original was ("03/14", "12/25"), not when it was "3/14"
    pad = any(x.startswith("0") for x in nums) or (len(nums) == 2 and all(len(x) == 2 for x in nums))
    if g.get("m"):
        repl["m"] = _number_like(pad, new.month)
    if mon_txt:
        repl["mon"] = _month_like(mon_txt, new.month)
    if d_txt:
        repl["d"] = _number_like(pad or (not g.get("m") and d_txt.startswith("0")), new.day)
    if g.get("ord"):
        repl["ord"] = _ordinal_suffix(new.day, upper=g["ord"].isupper())
    if y_txt:
        repl["y"] = f"{new.year % 100:02d}" if len(y_txt) == 2 else str(new.year)
    base = m.start("phi") if "phi" in m.re.groupindex else m.start()
    pieces = sorted((m.start(k) - base, m.end(k) - base, v) for k, v in repl.items() if m.start(k) >= 0)
    out, pos = [], 0
    for s, e, v in pieces:
        out.append(text[pos:s])
        out.append(v)
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _number_like(pad: bool, value: int) -> str:
    return f"{value:02d}" if pad else str(value)


def _month_like(original: str, month: int) -> str:
    core = original.rstrip(".")
    full = calendar.month_name[month]
    name = full if len(core) > 4 or core.lower() in ("june", "july") else calendar.month_abbr[month]
    if core.lower() == "sept" and month == 9:
        name = "Sept"
    if core.isupper():
        name = name.upper()
    return name


def _ordinal_suffix(day: int, upper: bool = False) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return suffix.upper() if upper else suffix


def make_operator(name: str, *, seed: int = 0, salt: str | None = None,
                  max_shift_days: int = 365) -> Any:
    if name == "placeholder":
        return PlaceholderOperator()
    if name == "surrogate":
        return SurrogateOperator(seed, max_shift_days=max_shift_days)
    if name == "hash":
        import secrets

        return HashOperator(salt if salt else secrets.token_hex(16))
    raise ValueError(f"unknown operator {name!r}; choose one of {', '.join(OPERATORS)}")
