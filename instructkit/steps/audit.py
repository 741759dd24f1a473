"""Residual-PHI audit: an independent second detector over finished records.

The audit does not reuse the anonymizer's recognizers. It runs its own high-recall
pattern battery for structured identifiers (``audit_patterns.yaml``) plus spaCy NER for
names, and reports suspects by type with the ids of the records they are in (never the
values). A recipe sets the limits (default: zero structured identifiers; names are
reported only); the result's ``passed`` is what ``publish`` reads from the manifest at
``manifest["stages"][i]["extra"]["audit"]["passed"]`` for the stage named ``audit``.

Sources declared free of PHI (``phi: false``) are read too, but what is found where the
anonymizer leaves text alone by design (template records of such sources, and the fields
copied from them into records a model wrote: passages, citations) is reported apart
(``phi_free_suspects_by_type``) and not held to the limits: a public dataset's URLs and
publication dates are not identifiers of anyone. That relaxation never covers the ``direct``
types of the battery (SSN, phone, email, IP, record numbers, ages over 89): found anywhere,
they are held to the limits, whatever a source declared. What a model wrote is always held
to them.

Text the anonymizer marked (placeholders ``[NAME]``, hashes ``[NAME:1a2b..]``), masks the
source already had (``XXXX``, ``[** ... **]``) and the spans where the surrogate operator
wrote fake values (``provenance.anonymization.surrogate_spans``) are not suspects.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from instructkit.records import Record, path_label, recipe_texts, text_fields
from instructkit.steps.anonymize.normalize import STAT_PREFIX, Normalized, normalize, take_stats
from instructkit.steps.anonymize.shapes import public_value
from instructkit.steps.base import Step
from instructkit.steps.ner_pool import NerPool, Pending, auto_processes, person_counts

logger = logging.getLogger("instructkit")

__all__ = ["AuditDetector", "AuditStep", "PhiFreeScope", "audit_dataset", "audit_records", "default_limits",
           "direct_types", "split_direct", "auto_processes"]

HERE = Path(__file__).resolve().parent
#: types whose values can, by their shape or place, belong to no individual (an agency's URL,
#: a toll-free number, a population's age bound): the same rule the anonymizer keeps them by
_SHAPE_TYPES = {"URL": "URL", "PHONE": "PHONE", "AGE_OVER_89": "AGE", "IP": "IP"}


@functools.cache
def _battery() -> dict[str, Any]:
    return yaml.safe_load((HERE / "audit_patterns.yaml").read_text(encoding="utf-8"))


def default_limits() -> dict[str, int | None]:
    """Zero for every structured identifier type; names and long numbers reported only."""
    return {t: (0 if spec.get("structured") else None) for t, spec in _battery()["types"].items()}


@functools.cache
def direct_types() -> frozenset[str]:
    """Identifier types no declaration relaxes (``direct: true`` in the battery): a ``phi:
    false`` source's SSN is still an SSN."""
    return frozenset(t for t, spec in _battery()["types"].items() if spec.get("direct"))


def split_direct(counts: Counter[str]) -> tuple[Counter[str], Counter[str]]:
    """(the direct-identifier part of ``counts``, the rest)."""
    direct = direct_types()
    return (Counter({t: n for t, n in counts.items() if t in direct}),
            Counter({t: n for t, n in counts.items() if t not in direct}))


#: a sentence ends at . ! ? followed by space and a capital, digit or quote, or at a blank line
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=[A-Z0-9\"'(\[])|\n\s*\n")
#: words after which a period does not end a sentence (titles before names, initials)
_NO_SPLIT_AFTER = re.compile(r"(?:^|\s)(?:Dr|Mr|Mrs|Ms|Mx|Prof|Sr|Jr|St|Rev|Hon|Gen|Capt|Lt|Col|Sgt|No|Nos|"
                             r"Fig|vs|etc|approx|e\.g|i\.e|[A-Z])$")


def ner_units(text: str) -> list[str]:
    """``text`` cut into sentences for NER (not after a title or an initial); texts with no
    letter give none."""
    if not any(ch.isalpha() for ch in text):
        return []
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.group().startswith(".") and _NO_SPLIT_AFTER.search(text[max(0, m.start() - 12):m.start()]):
            continue
        piece = text[start:m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [u for u in out if any(ch.isalpha() for ch in u)]


def _recall(memory: "OrderedDict[str, Any]", keys: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """(what ``memory``, an LRU, holds for ``keys``, the keys it does not hold); what it held
    becomes its most recent."""
    held, missing = {}, []
    for k in keys:
        v = memory.get(k)
        if v is None:
            missing.append(k)
        else:
            memory.move_to_end(k)
            held[k] = v
    return held, missing


@dataclass
class _Scan:
    """A scan between ``AuditDetector.scan_start`` and ``scan_finish``."""

    blanked: list[str]
    todo: list[str] = field(default_factory=list)
    found: dict[str, Counter[str]] = field(default_factory=dict)
    pattern_counts: list[Counter[str]] = field(default_factory=list)
    units: list[list[str]] = field(default_factory=list)
    ner_todo: list[str] = field(default_factory=list)
    unit_counts: dict[str, int] = field(default_factory=dict)
    #: sentences an earlier, unfinished scan was counting when this one started
    deferred: dict[str, "_Scan"] = field(default_factory=dict)
    pending: Any = None
    _counted: dict[str, int] | None = None

    def counted(self) -> dict[str, int]:
        """PERSON counts of the sentences this scan sent to NER (waits for them)."""
        if self._counted is None:
            self._counted = dict(zip(self.ner_todo, self.pending.result()))
        return self._counted


class AuditDetector:
    """Finds suspects in text: {type: count}, skipping masks and exempt spans.

    Each distinct text is scanned once: a record repeats its texts (``output`` is also the
    assistant message) and records share theirs (instructions, source fields), so texts are
    de-duplicated within a call and short ones remembered across calls (a bounded LRU
    cache in memory, never on disk). spaCy runs only its NER component, over batches.
    """

    #: texts (and sentences) up to this many characters are remembered
    CACHE_TEXT_CHARS = 2000
    #: sentences remembered per remembered text
    UNIT_CACHE_FACTOR = 8

    def __init__(self, *, names: bool = True, ner_model: str | None = None,
                 batch_size: int = 64, cache_size: int = 8192, n_process: int = 1) -> None:
        b = _battery()
        self.patterns = {t: re.compile("|".join(f"(?:{p})" for p in spec["patterns"]),
                                       re.IGNORECASE | re.MULTILINE)
                         for t, spec in b["types"].items()}
        self.masks = re.compile("|".join(f"(?:{m})" for m in b["masks"]))
        self.names = names
        self.batch_size = max(1, int(batch_size))
        self.cache_size = max(0, int(cache_size))
        self._cache: OrderedDict[str, Counter[str]] = OrderedDict()
        self._units: OrderedDict[str, int] = OrderedDict()
        self._nlp = None
        self._ner_model = ner_model
        #: NER processes: this one plus ``n_process - 1`` spawned workers (each loads the model
        #: once) sharing every batch of texts by length
        self.n_process = max(1, int(n_process))
        self._pool: Any = None
        #: sentence -> the started scan that is counting it
        self._inflight: dict[str, _Scan] = {}

    def _spacy_args(self) -> tuple[str, tuple[str, ...]]:
        from instructkit.steps.anonymize.detect import load_recognizer_config

        scfg = load_recognizer_config()["spacy"]
        # NER alone (it has its own tok2vec): the audit is a second opinion, without the
        # detector's tagger rules
        return self._ner_model or scfg["model"], tuple(scfg["exclude"]) + ("tok2vec", "tagger")

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            from instructkit.steps.anonymize.detect import _load_spacy

            self._nlp = _load_spacy(*self._spacy_args())
        return self._nlp

    def close(self) -> None:
        self._inflight.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _pool_for(self) -> Any:
        if self.n_process > 1 and self._pool is None:
            self._pool = NerPool(*self._spacy_args(), processes=self.n_process)
        return self._pool

    def scan_many(self, items: list[tuple[str, list[list[int]]]]) -> list[Counter[str]]:
        """``items``: (text, exempt spans). Returns suspect counts per text."""
        return self.scan_finish(self.scan_start(items))

    def scan_start(self, items: list[tuple[str, list[list[int]]]]) -> "_Scan":
        """Begin scanning ``items``: the patterns now, NER handed to the pool's workers (with
        more than one process), so the caller can read its next records meanwhile;
        ``scan_finish`` gives the counts. Scans must finish in the order they started."""
        blanked = [self._blank(t, ex) for t, ex in items]
        scan = _Scan(blanked)
        scan.found, scan.todo = _recall(self._cache, dict.fromkeys(blanked))
        # read as a reader sees them: encodings decoded, invisible characters gone (normalize)
        normed = [normalize(t) for t in scan.todo]
        scan.pattern_counts = [self._pattern_counts(n) for n in normed]
        if self.names:
            scan.units = [ner_units(n.text) for n in normed]
            units = dict.fromkeys(u for us in scan.units for u in us)
            # sentences an earlier scan is counting are taken from it when it is done
            scan.deferred = {u: self._inflight[u] for u in units if u in self._inflight}
            scan.unit_counts, scan.ner_todo = _recall(self._units, (u for u in units if u not in scan.deferred))
            pool = self._pool_for()
            scan.pending = (pool.submit(self.nlp, scan.ner_todo, self.batch_size) if pool is not None
                            else Pending(done=person_counts(self.nlp, scan.ner_todo, self.batch_size)))
            self._inflight.update(dict.fromkeys(scan.ner_todo, scan))
        return scan

    def scan_finish(self, scan: "_Scan") -> list[Counter[str]]:
        """The counts per text of a started scan (see ``scan_start``)."""
        if self.names:
            counted = scan.counted()
            for u, n in counted.items():
                self._remember_unit(u, n)
                if self._inflight.get(u) is scan:
                    del self._inflight[u]
            scan.unit_counts.update(counted)
            for u, earlier in scan.deferred.items():
                scan.unit_counts[u] = earlier.counted()[u]
        for i, text in enumerate(scan.todo):
            counts = scan.pattern_counts[i]
            if self.names:
                n = sum(scan.unit_counts[u] for u in scan.units[i])
                if n:
                    counts["NAME"] += n
            scan.found[text] = counts
            if self.cache_size and len(text) <= self.CACHE_TEXT_CHARS:
                self._cache[text] = counts
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [Counter(scan.found[t]) for t in scan.blanked]

    def _remember_unit(self, unit: str, n: int) -> None:
        if self.cache_size and len(unit) <= self.CACHE_TEXT_CHARS:
            self._units[unit] = n
            if len(self._units) > self.UNIT_CACHE_FACTOR * self.cache_size:
                self._units.popitem(last=False)

    def _pattern_counts(self, text: str | Normalized) -> Counter[str]:
        """Suspects by type in a (normalised) text; a suspect in a decoded run counts as its
        type too (held to its limits), and the normalisation figures ride along under
        ``STAT_PREFIX`` (``"SSN (encoded)"``, each transform that fired)."""
        norm = text if isinstance(text, Normalized) else normalize(text)
        text = norm.text
        c: Counter[str] = Counter({STAT_PREFIX + k: n for k, n in norm.fired.items()})
        for typ, rx in self.patterns.items():
            shape = _SHAPE_TYPES.get(typ)
            n = 0
            for m in rx.finditer(text):
                if shape and public_value(text, m.start(), m.end(), shape):
                    continue
                n += 1
                if norm.encoded and norm.encoded_in(m.start(), m.end()):
                    c[f"{STAT_PREFIX}{typ} (encoded)"] += 1
            if n:
                c[typ] += n
        return c

    def _blank(self, text: str, exempt: list[list[int]]) -> str:
        """Masks and exempt spans become spaces (offsets kept, nothing left to match)."""
        chars = list(text)
        for m in self.masks.finditer(text):
            chars[m.start():m.end()] = " " * (m.end() - m.start())
        for s, e in exempt or []:
            s, e = max(0, int(s)), min(len(chars), int(e))
            chars[s:e] = " " * (e - s)
        return "".join(chars)


def _texts(rec: Record) -> list[tuple[str, str]]:
    """(path, text) of every text of a record (from the record schema; the same path labels
    as ``surrogate_spans``)."""
    return [(path_label(p), t) for p, t in text_fields(rec)]


@dataclass
class PhiFreeScope:
    """What a run declared free of PHI: ``sources`` (``phi: false``), ``copies`` (LLM
    builders whose every document is ``phi: false``) and ``recipe`` (the url and citation the
    recipe declares for its sources: recipe text, which the anonymizer leaves too). Sets, not
    copies: a run's sets fill as its builders load."""

    sources: Any = field(default_factory=set)
    copies: Any = field(default_factory=set)
    recipe: frozenset[str] = frozenset()

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "PhiFreeScope":
        declared = manifest.get("phi_free") or {}
        return cls(set(declared.get("sources") or ()), set(declared.get("copies") or ()),
                   recipe_texts(manifest.get("sources") or ()))

    def as_dict(self) -> dict[str, list[str]]:
        return {"sources": sorted(self.sources), "copies": sorted(self.copies)}

    def split(self, rec: Record) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(texts held to the limits, texts of declared PHI-free origin) of a record."""
        every = [(path_label(p), t) for p, t in text_fields(rec, recipe_texts=self.recipe)]
        name = (rec.get("source") or {}).get("name")
        if name in self.sources and rec.get("method") == "template":
            return [], every
        if name in self.sources or name in self.copies:
            limited = [(path_label(p), t) for p, t in
                       text_fields(rec, skip_source_copies=True, recipe_texts=self.recipe)]
            held = {label for label, _ in limited}
            return limited, [(label, t) for label, t in every if label not in held]
        return every, []


class AuditReport:
    """Running totals of an audit; ``as_dict()`` is what the manifest gets."""

    def __init__(self, limits: dict[str, int | None], max_record_ids: int = 50,
                 names: bool = True) -> None:
        self.limits = limits
        self.max_record_ids = max_record_ids
        self.names = names
        self.records = 0
        self.records_with_suspects = 0
        self.suspects: Counter[str] = Counter()
        self.ids: dict[str, list[str]] = defaultdict(list)
        self.phi_free: Counter[str] = Counter()
        #: normalisation figures: transforms that fired, suspects found only decoded
        self.normalised: Counter[str] = Counter()

    def add(self, record_id: str, counts: Counter[str], phi_free: Counter[str] | None = None) -> None:
        self.records += 1
        self.phi_free.update(phi_free or {})
        if counts:
            self.records_with_suspects += 1
        for typ, n in counts.items():
            self.suspects[typ] += n
            if len(self.ids[typ]) < self.max_record_ids:
                self.ids[typ].append(record_id)

    def failed_types(self) -> list[str]:
        return sorted(t for t, n in self.suspects.items()
                      if self.limits.get(t) is not None and n > self.limits[t])

    @property
    def passed(self) -> bool:
        return not self.failed_types()

    def counts(self) -> dict[str, Any]:
        """The additive part (what workers' reports add up to)."""
        return {"records_scanned": self.records, "records_with_suspects": self.records_with_suspects,
                "suspects_by_type": dict(sorted(self.suspects.items())),
                "record_ids_by_type": {t: list(v) for t, v in sorted(self.ids.items())},
                "phi_free_suspects_by_type": dict(sorted(self.phi_free.items())),
                "normalised": dict(sorted(self.normalised.items())),
                "names_checked": self.names}

    def as_dict(self) -> dict[str, Any]:
        return finalize_report(self.counts(), self.limits, self.max_record_ids)


def finalize_report(counts: dict[str, Any], limits: dict[str, int | None],
                    max_record_ids: int = 50) -> dict[str, Any]:
    """The audit's verdict from (merged) counts: failed types, passed, and ``verdict`` (which
    kinds block and which only report, ``steps.audit_verdict``: what every place prints)."""
    from instructkit.steps.audit_verdict import audit_verdict

    verdict = audit_verdict(counts, limits)
    ids = {t: list(v)[:max_record_ids] for t, v in (counts.get("record_ids_by_type") or {}).items()}
    return {**counts, "record_ids_by_type": ids, "passed": verdict.passed, "failed_types": sorted(verdict.over),
            "limits": dict(sorted(limits.items())), "verdict": verdict.as_dict()}


def _limits(config: dict[str, Any]) -> dict[str, int | None]:
    limits = default_limits()
    for t, n in (config.get("limits") or {}).items():
        limits[t] = None if n is None else int(n)
    return limits


def audit_records(records: Iterable[Record], detector: AuditDetector, report: AuditReport,
                  batch: int = 128, phi_free: PhiFreeScope | None = None,
                  ) -> Iterator[tuple[Record, Counter[str]]]:
    """Scan records in batches; yield each with its suspect counts held to the limits (added
    to ``report``; what is found in text of declared PHI-free origin is reported apart)."""
    buf: list[Record] = []
    scope = phi_free or PhiFreeScope()

    def start(buf: list[Record]) -> tuple[list[Record], list[tuple[int, bool]], Any]:
        items, owners = [], []
        for k, rec in enumerate(buf):
            anon = (rec.get("provenance") or {}).get("anonymization") or {}
            spans = anon.get("surrogate_spans") or {}
            limited, declared = scope.split(rec)
            for free, texts in ((False, limited), (True, declared)):
                for path, text in texts:
                    items.append((text, spans.get(path, [])))
                    owners.append((k, free))
        return buf, owners, detector.scan_start(items)

    def finish(buf: list[Record], owners: list[tuple[int, bool]], scan: Any
               ) -> Iterator[tuple[Record, Counter[str]]]:
        counts = [Counter() for _ in buf]
        free_counts = [Counter() for _ in buf]
        for (k, free), c in zip(owners, detector.scan_finish(scan)):
            report.normalised.update(take_stats(c))
            if free:  # declared PHI-free text relaxes names and places, never direct identifiers
                held, relaxed = split_direct(c)
                counts[k].update(held)
                free_counts[k].update(relaxed)
            else:
                counts[k].update(c)
        for rec, c, fc in zip(buf, counts, free_counts):
            report.add(str(rec.get("id")), c, fc)
            yield rec, c

    # one batch in flight: its NER runs on the pool's workers while the next batch is read
    # (which runs the stages before the audit on this process)
    pending = None
    for rec in records:
        buf.append(rec)
        if len(buf) >= batch:
            started = start(buf)
            buf = []
            if pending is not None:
                yield from finish(*pending)
            pending = started
    if buf:
        started = start(buf)
        if pending is not None:
            yield from finish(*pending)
        pending = started
    if pending is not None:
        yield from finish(*pending)


class AuditStep(Step):
    """Pass records on unchanged and report residual-PHI suspects (optionally drop them)."""

    name = "audit"

    def __init__(self, *, limits: dict[str, int | None] | None = None, names: bool = True,
                 drop_suspects: bool = False, max_record_ids: int = 50,
                 detector: AuditDetector | None = None, n_process: int = 1,
                 phi_free: PhiFreeScope | None = None) -> None:
        super().__init__()
        self.phi_free = phi_free or PhiFreeScope()
        self.limits = limits if limits is not None else default_limits()
        self.names = names
        self.drop_suspects = drop_suspects
        self.max_record_ids = max_record_ids
        self.detector = detector or AuditDetector(names=names, n_process=n_process)
        self.report = AuditReport(self.limits, max_record_ids, names)

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: Any) -> "AuditStep":
        config = dict(config or {})
        names = bool(config.get("names", True))
        n_process = config.get("n_process")
        if n_process is None:
            # a Ray worker is one of many already: its NER stays in its own process
            n_process = 1 if (getattr(ctx, "execution", None) or {}).get("worker") else auto_processes()
        detector = ctx.shared(f"audit.detector.names={names}.n_process={n_process}",
                              lambda: AuditDetector(names=names, n_process=int(n_process)))
        return cls(limits=_limits(config), names=names,
                   drop_suspects=bool(config.get("drop_suspects", False)),
                   max_record_ids=int(config.get("max_record_ids", 50)), detector=detector,
                   phi_free=PhiFreeScope(getattr(ctx, "phi_free_sources", set()),
                                         getattr(ctx, "phi_free_copies", set()),
                                         recipe_texts((getattr(ctx, "recipe", None) or {}).get("sources") or ())))

    def reset(self) -> None:
        self.report = AuditReport(self.limits, self.max_record_ids, self.names)

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec, counts in audit_records(records, self.detector, self.report, phi_free=self.phi_free):
            over = sorted(t for t, n in counts.items() if self.limits.get(t) is not None and n)
            if self.drop_suspects and over:
                self.drop(rec, "residual_phi_suspect", types=over)
                continue
            yield rec

    def summary(self) -> dict[str, Any]:
        return {"audit": self.report.counts()}

    def finalize(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {**summary, "audit": finalize_report(summary.get("audit") or {}, self.limits,
                                                    self.max_record_ids)}

    def settings(self) -> dict[str, Any]:
        return {"limits": dict(sorted(self.limits.items())), "names": self.names,
                "drop_suspects": self.drop_suspects}

    def card_section(self, stats: Any) -> str:
        r = (stats.extra or {}).get("audit") or {}
        lines = ["### Residual-PHI audit", "",
                 f"An independent detector (pattern battery{' + spaCy NER for names' if r.get('names_checked') else ''}) "
                 f"scanned every text field of {r.get('records_scanned', 0)} records: "
                 f"**{'passed' if r.get('passed') else 'FAILED'}**."]
        if r.get("suspects_by_type"):
            limits = r.get("limits") or {}
            lines += ["", "| suspect type | count | limit |", "|---|---:|---:|"]
            lines += [f"| {t} | {n} | {limits.get(t) if limits.get(t) is not None else 'report only'} |"
                      for t, n in r["suspects_by_type"].items()]
        else:
            lines += ["", "No suspected identifier was found."]
        free = r.get("phi_free_suspects_by_type") or {}
        if free:
            lines += ["", "In text of sources declared free of PHI (`phi: false`), which the anonymizer "
                      "leaves as it is by design, it also found (names, places, dates and URLs: reported, "
                      "not held to the limits; direct identifiers there are counted above): "
                      + ", ".join(f"{t} {n}" for t, n in free.items()) + "."]
        return "\n".join(lines) + "\n"


def __getattr__(name: str) -> Any:
    # the folder audit lives in steps/audit_folder.py (it imports this module)
    if name == "audit_dataset":
        from instructkit.steps.audit_folder import audit_dataset

        return audit_dataset
    raise AttributeError(name)
