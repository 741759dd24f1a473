"""The anonymize stage: every text of a record, PHI replaced, counts (never values) kept.

"Every text" is every string the record schema does not mark as the project's own
(``records.text_fields``): instruction, input, output, messages, meta, context, source and
provenance alike. Texts of a batch of records go through the detector together (one
``nlp.pipe``; a text repeated within the batch is detected once, and the findings of recent
short texts are remembered across batches, in memory only); each record gets its own
operator instance so surrogates are consistent across its fields. A canary self-test runs on
copies of the first records: synthetic PHI is planted in every text field, anonymized the
same way, and every canary value must be gone (the copies are then thrown away).

What is scanned at all follows one principle (``public_text.py``): a record's text is
scanned only where it may hold text from a source that may hold PHI. A template's own words
(phrasings, labels, shipped few-shot turns), a template record of a ``phi: false`` source and
what a model wrote from PHI-free inputs only are held apart, and the summary counts the
records and characters held apart by reason.
"""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from instructkit.records import Record, path_label, recipe_texts as declared_recipe_texts, set_path, text_fields, user_turn
from instructkit.steps.base import Step
from instructkit.steps.anonymize.detect import PhiDetector
from instructkit.steps.anonymize.detectors import DetectorSettings, detector_for
from instructkit.steps.anonymize.findings import Finding
from instructkit.steps.anonymize.operators import OPERATORS, apply_findings, make_operator
from instructkit.steps.anonymize.public_text import (HELD_APART_REASONS, clip_findings,
                                                     template_text_ranges, whole_record_reason)

logger = logging.getLogger("instructkit")

__all__ = ["AnonymizeStep"]

class AnonymizeStep(Step):
    """Replace PHI in instruction, input, output, messages and context texts."""

    name = "anonymize"
    #: findings of this many recent texts are remembered across batches (an instruction
    #: phrasing, a common answer): a bounded LRU in memory, never written anywhere
    CACHE_TEXTS = 4096
    #: texts longer than this are not remembered (a long text seldom comes back)
    CACHE_TEXT_CHARS = 2000
    #: ... in records whose running texts together are at most this long (the context is
    #: part of the key, so it bounds what the memory holds)
    CACHE_CONTEXT_CHARS = 20_000

    def __init__(self, operator: str = "placeholder", *, detector: PhiDetector | None = None,
                 seed: int = 0, entities: Iterable[str] | None = None,
                 score_threshold: float = 0.5, n_process: int = 1, batch_size: int = 32,
                 batch_records: int = 64, keep_states_and_countries: bool = True,
                 deny_terms: Iterable[str] = (), max_shift_days: int = 365,
                 hash_salt: str | None = None, canary: bool = True, canary_records: int = 2,
                 skip_sources: Iterable[str] = (), copy_free_sources: Iterable[str] = (),
                 recipe_texts: Iterable[str] = (), name_model: str | None = "rampart") -> None:
        super().__init__()
        if operator not in OPERATORS:
            raise ValueError(f"unknown operator {operator!r}; choose one of {', '.join(OPERATORS)}")
        self.operator_name = operator
        self.operator = make_operator(operator, seed=seed, salt=hash_salt,
                                      max_shift_days=max_shift_days)
        self.detector = detector or PhiDetector(
            entities=entities, score_threshold=score_threshold, n_process=n_process,
            batch_size=batch_size, keep_states_and_countries=keep_states_and_countries,
            extra_deny=deny_terms, name_model=name_model)
        self.seed = seed
        self.batch_records = max(1, int(batch_records))
        self.canary_enabled = canary
        self.canary_records = max(1, int(canary_records))
        #: sources declared PHI-free (``phi: false``): their template records pass unchanged,
        #: and so do records a model wrote from their rows
        self.skip_sources = frozenset(skip_sources)
        #: names under which LLM builders write records from PHI-free inputs only (documents
        #: all ``phi: false``, the project's seed pool): such records pass unchanged.
        #: Kept as given: the run's set (``ctx.phi_free_copies``) fills as its builders load.
        self.copy_free_sources = copy_free_sources if isinstance(copy_free_sources, set) else set(copy_free_sources)
        #: a source's url and citation as the recipe declares them: recipe text, not source data
        self.recipe_texts = frozenset(recipe_texts)
        self._reset()

    def _reset(self) -> None:
        #: (text, scope, record context) -> findings: the texts are PHI, so this stays in
        #: this process
        self._found: OrderedDict[tuple[str, str, str], list[Finding]] = OrderedDict()
        self.replaced: Counter[str] = Counter()
        #: how often each normalisation fired on the texts detected (``normalize``)
        self.normalised: Counter[str] = Counter()
        self.records_changed = 0
        self.records_skipped = 0
        #: what was left alone, by reason: records, characters (and for template text, the
        #: findings dropped or cut there)
        self.held_apart: dict[str, Counter[str]] = {r: Counter() for r in HELD_APART_REASONS}
        self.canary_result: dict[str, Any] | None = None

    def reset(self) -> None:
        self._reset()

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: Any) -> "AnonymizeStep":
        from instructkit._resources import schema_defaults

        cfg = {**schema_defaults("stages/anonymize.schema.json"), **(config or {})}
        canary = cfg["canary"]
        if isinstance(canary, bool):
            canary = {"enabled": canary}
        canary = {"enabled": True, "records": 2, **canary}
        # the run's detector for these settings: the guard in front of model requests and
        # the audit's name and place check get the same one (``detectors.detector_for``)
        detector = detector_for(DetectorSettings.from_stage(cfg), ctx)
        return cls(cfg["operator"], detector=detector, seed=int(getattr(ctx, "seed", 0) or 0),
                   batch_records=int(cfg["batch_records"]), max_shift_days=int(cfg["max_shift_days"]),
                   hash_salt=cfg["hash_salt"], canary=bool(canary["enabled"]),
                   canary_records=int(canary["records"]),
                   skip_sources=getattr(ctx, "phi_free_sources", ()) or (),
                   copy_free_sources=getattr(ctx, "phi_free_copies", set()),
                   recipe_texts=declared_recipe_texts((getattr(ctx, "recipe", None) or {}).get("sources") or ()))

    # -- the stream --------------------------------------------------------------------------
    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        batch: list[Record] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= self.batch_records:
                yield from self._process_batch(batch)
                batch = []
        if batch:
            yield from self._process_batch(batch)
        if self.canary_enabled and self.canary_result is None:
            self.canary_result = self.run_canary([])

    def _process_batch(self, batch: list[Record]) -> Iterator[Record]:
        if self.canary_enabled and self.canary_result is None:
            self.canary_result = self.run_canary(batch[: self.canary_records])
        reasons = [self._held_apart_reason(r) for r in batch]
        todo = [r for r, why in zip(batch, reasons) if why is None]
        results = iter(self.anonymize_records(todo))
        for rec, why in zip(batch, reasons):
            if why is not None:
                self.records_skipped += 1
                held = self.held_apart[why]
                held["records"] += 1
                held["chars"] += sum(len(t) for _, t in text_fields(rec))
                yield rec
                continue
            result = next(results)
            if isinstance(result, Exception):
                # the quarantine scrubs every string it writes, so the record lands redacted
                self.drop(rec, "anonymize_failed", error=type(result).__name__)
                continue
            counts = result["provenance"]["anonymization"]["replaced"]
            if counts:
                self.records_changed += 1
                self.replaced.update(counts)
            yield result

    def _held_apart_reason(self, rec: Record) -> str | None:
        """Why none of ``rec`` is rewritten (``phi_free_source``: a template record of a
        ``phi: false`` source; ``phi_free_llm_output``: a record a model wrote from PHI-free
        inputs only), or None: then it is scanned, all but its template text."""
        if not isinstance(rec, dict) or not (self.skip_sources or self.copy_free_sources):
            return None
        return whole_record_reason(rec, self.skip_sources, self.copy_free_sources)

    def _phi_free(self, rec: Record) -> bool:
        return self._held_apart_reason(rec) is not None

    def _copies_phi_free(self, rec: Record) -> bool:
        name = (rec.get("source") or {}).get("name")
        return name in self.skip_sources or name in self.copy_free_sources

    def anonymize_records(self, records: list[Record]) -> list[Record | Exception]:
        """Anonymized copies of ``records`` (an exception in place of a record that failed).

        The record's running texts (instruction, input, output, messages, context) are
        detected in one batch. A short field elsewhere (``meta.options.B``, ``meta.answer``)
        that is part of one of them takes its findings from there, in context: alone,
        "Benztropine" looks like a name, inside "B. Benztropine" it does not. Fields found in
        no running text are detected on their own."""
        plans: list[list[tuple[tuple, str]] | Exception] = []
        scopes: list[tuple[str, str]] = []
        texts: list[tuple[str, str, str]] = []
        index: dict[tuple[str, str, str], int] = {}

        def want(t: str, scope: tuple[str, str]) -> None:
            if (t, *scope) not in index:  # the same text in two fields (output and meta.answer) once
                index[t, *scope] = len(texts)
                texts.append((t, *scope))

        for rec in records:
            try:
                plan = _texts_of(rec, skip_source_copies=self._copies_phi_free(rec),
                                 recipe_texts=self.recipe_texts)
            except Exception as exc:  # noqa: BLE001 - a bad record is quarantined, not fatal
                plans.append(exc)
                scopes.append(("", ""))
                continue
            plans.append(plan)
            running = [t for p, t in plan if p[0] in RUNNING_FIELDS]
            # what kind of prose the record is, read from its running texts together: the
            # long answer of a research abstract is research prose because its abstract is
            # and the record's running texts are the context of each of its texts (a word
            # in lower case in the answer is no name in the question)
            context = "\n".join(running)
            scope = (self.detector.scope_of(context), context)
            scopes.append(scope)
            for p, t in plan:
                if p[0] in RUNNING_FIELDS or not any(t in r for r in running):
                    want(t, scope)
        found_all = self._detect(texts)
        out: list[Record | Exception] = []
        for rec, plan, scope in zip(records, plans, scopes):
            if isinstance(plan, Exception):
                out.append(plan)
                continue
            try:
                running = [(t, found_all[index[t, *scope]]) for p, t in plan if p[0] in RUNNING_FIELDS]
                found = [list(found_all[index[t, *scope]]) if (t, *scope) in index
                         else _in_context(t, running) for _, t in plan]
                out.append(self._rewrite(rec, plan, found))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def _detect(self, texts: list[tuple[str, str, str]]) -> list[list[Finding]]:
        """Findings of each (text, scope, record context), those of recently seen short texts
        from memory (keyed by all three: a text's findings depend on its record's context)."""
        cache = self._found
        found: list[list[Finding] | None] = []
        todo: list[int] = []
        for i, key in enumerate(texts):
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
            else:
                todo.append(i)
            found.append(hit)
        if todo:
            new = self.detector.detect_many([texts[i][0] for i in todo], [texts[i][1] for i in todo],
                                            [texts[i][2] for i in todo], stats=self.normalised)
            for i, fnd in zip(todo, new):
                found[i] = fnd
                if self.CACHE_TEXTS and len(texts[i][0]) <= self.CACHE_TEXT_CHARS \
                        and len(texts[i][2]) <= self.CACHE_CONTEXT_CHARS:
                    cache[texts[i]] = fnd
                    if len(cache) > self.CACHE_TEXTS:
                        cache.popitem(last=False)
        return found  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_found"] = OrderedDict()  # remembered texts are PHI: never pickled
        return state

    def _rewrite(self, rec: Record, plan: list[tuple[tuple, str]], found: list[list[Any]]) -> Record:
        new = _copy_record(rec)
        op = self.operator.for_record(str(rec.get("id") or rec.get("source", {}).get("record_id", "")))
        counts: Counter[str] = Counter()
        spans: dict[str, list[list[int]]] = {}
        # the template's own text is the project's: findings there are dropped (before a
        # name found there could spread through the record, and after)
        literal = template_text_ranges(rec)
        if literal:
            found = self._clip_template_text(plan, found, literal, count=True)
        found = _propagate_names(plan, found, self.detector)
        if literal:
            found = self._clip_template_text(plan, found, literal, count=False)
        for (path, text), fnd in zip(plan, found):
            if not fnd:
                continue
            new_text, repl = apply_findings(text, fnd, op)
            set_path(new, path, new_text)
            counts.update(t for _, _, t in repl)
            spans[path_label(path)] = [[s, e] for s, e, _ in repl]
        # chat messages made from the record are rebuilt from the anonymized fields
        for j, msg in enumerate(rec.get("messages") or []):
            content = msg.get("content")
            if not isinstance(content, str):
                continue
            key = f"messages.{j}.content"
            if content == user_turn(rec):
                new["messages"][j]["content"] = user_turn(new)
                sp = spans.get("instruction", [])
                if (rec.get("input") or "").strip():
                    off = len(new["instruction"]) + 2
                    sp = sp + [[s + off, e + off] for s, e in spans.get("input", [])]
                if sp:
                    spans[key] = sp
            elif content == rec.get("output"):
                new["messages"][j]["content"] = new["output"]
                if spans.get("output"):
                    spans[key] = spans["output"]
        anon: dict[str, Any] = {"operator": self.operator_name,
                                "replaced": dict(sorted(counts.items()))}
        if self.operator_name == "surrogate" and spans:
            # where the surrogates are (offsets, no values), so the audit does not take
            # them for leaks
            anon["surrogate_spans"] = spans
        new.setdefault("provenance", {})["anonymization"] = anon
        return new

    def _clip_template_text(self, plan: list[tuple[tuple, str]], found: list[list[Any]],
                            literal: dict[str, list[tuple[int, int]]], *, count: bool) -> list[list[Any]]:
        out, touched = [], 0
        for (path, text), fnd in zip(plan, found):
            ranges = literal.get(path_label(path))
            if ranges:
                fnd, n = clip_findings(fnd, ranges, text)
                touched += n
            out.append(fnd)
        held = self.held_apart["template_text"]
        held["findings"] += touched
        if count:
            held["records"] += 1
            held["chars"] += sum(e - s for ranges in literal.values() for s, e in ranges)
        return out

    # -- quarantine scrubber -----------------------------------------------------------------
    def quarantine_scrubber(self):
        return self.scrub_texts

    def scrub_texts(self, texts: list[str]) -> list[str]:
        """Placeholder redaction of many strings in one detector pass (fails closed)."""
        try:
            found = self.detector.detect_many(list(texts))
        except Exception:  # noqa: BLE001 - fail closed: nothing unscrubbed reaches disk
            return ["[REDACTED]" for _ in texts]
        return [apply_findings(t, f, lambda _o, x: f"[{x.type}]")[0] for t, f in zip(texts, found)]

    def scrub_text(self, text: str) -> str:
        """Placeholder redaction of one string (the quarantine writes only scrubbed text)."""
        if not isinstance(text, str) or not text:
            return text
        try:
            findings = self.detector.detect(text)
        except Exception:  # noqa: BLE001 - fail closed: nothing unscrubbed reaches disk
            return "[REDACTED]"
        return apply_findings(text, findings, lambda _o, f: f"[{f.type}]")[0]

    # -- canary ------------------------------------------------------------------------------
    def run_canary(self, sample: list[Record]) -> dict[str, Any]:
        """Inject synthetic PHI into copies of ``sample``, anonymize them, check it is gone."""
        from instructkit.steps.anonymize.canary import canary_check

        try:
            return canary_check(self, sample, seed=self.seed)
        except Exception as exc:  # noqa: BLE001 - a broken self-test is reported, not hidden
            logger.warning("anonymize canary self-test could not run: %s", type(exc).__name__)
            return {"enabled": True, "passed": False, "error": type(exc).__name__}

    # -- reporting ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        canary = self.canary_result or {"enabled": False}
        return {"anonymization": {
            "replaced": dict(sorted(self.replaced.items())),
            "replaced_total": sum(self.replaced.values()),
            "records_changed": self.records_changed,
            "records_skipped_phi_free": self.records_skipped,
            "normalised": dict(sorted(self.normalised.items())),
            "held_apart": {r: dict(sorted(c.items())) for r, c in self.held_apart.items() if c},
            "canary": {k: v for k, v in canary.items() if k != "missed_types"},
            "canary_missed_types": list(canary.get("missed_types") or []),
            **({"name_model": self.detector.name_model_credit} if self.detector.name_model_credit else {}),
        }}

    def finalize(self, summary: dict[str, Any]) -> dict[str, Any]:
        a = summary.get("anonymization") or {}
        a["canary_missed_types"] = sorted(set(a.get("canary_missed_types") or []))
        return summary

    def settings(self) -> dict[str, Any]:
        return {"operator": self.operator_name, "entities": sorted(self.detector.entities),
                "score_threshold": self.detector.score_threshold}

    def card_section(self, stats: Any) -> str:
        s = (stats.extra or {}).get("anonymization") or {}
        lines = ["### Anonymization", "",
                 f"PHI was replaced with the **{self.operator_name}** operator "
                 "(Presidio on spaCy with clinical recognizers for the HIPAA Safe Harbor identifiers) "
                 "in every text field of each record: instruction, input, output, messages, "
                 "meta, context, source and provenance.",
                 f"{s.get('replaced_total', 0)} spans were replaced in {s.get('records_changed', 0)} records."]
        held = s.get("held_apart") or {}
        if held:
            lines += ["", "Text nobody's patient wrote was left as it is (the residual-PHI audit still read it):", "",
                      "| reason | records | characters |", "|---|---:|---:|"]
            lines += [f"| {_HELD_APART_LABELS.get(r, r)} | {c.get('records', 0)} | {c.get('chars', 0)} |"
                      for r, c in sorted(held.items())]
            if held.get("template_text", {}).get("findings"):
                lines += ["", f"{held['template_text']['findings']} findings fell in template text "
                              "and were dropped or cut to the part a source row filled in."]
        elif s.get("records_skipped_phi_free"):
            lines.append(f"{s['records_skipped_phi_free']} records of sources declared free of "
                         f"PHI ({', '.join(sorted(self.skip_sources))}) were passed on unchanged; "
                         "the residual-PHI audit still read them.")
        if s.get("replaced"):
            lines += ["", "| type | replaced |", "|---|---:|"]
            lines += [f"| {t} | {n} |" for t, n in s["replaced"].items()]
        if s.get("name_model"):
            lines += ["", s["name_model"]]  # CC BY 4.0 asks for the credit
        c = s.get("canary") or {}
        if c.get("enabled"):
            verdict = "passed" if c.get("passed") else "FAILED"
            lines += ["", f"Canary self-test {verdict}: {c.get('removed', 0)} of {c.get('values', 0)} "
                          "injected synthetic identifiers were removed."]
        else:
            lines += ["", "Canary self-test: not run."]
        return "\n".join(lines) + "\n"


_ATOMS = (str, int, float, bool, type(None))

_HELD_APART_LABELS = {
    "template_text": "template text (phrasings, labels, shipped few-shot turns; characters in scanned records)",
    "phi_free_source": "template records of sources declared `phi: false`",
    "phi_free_llm_output": "model-written records whose every input was declared free of PHI",
}


def _copy_record(value: Any) -> Any:
    """A deep copy of a record's JSON data (dicts, lists and scalars), several times faster
    than ``copy.deepcopy``, which keeps a memo of every object; anything else goes to it."""
    kind = type(value)
    if kind is dict:
        return {k: _copy_record(v) for k, v in value.items()}
    if kind is list:
        return [_copy_record(v) for v in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


def _texts_of(rec: Record, *, skip_source_copies: bool = False,
              recipe_texts: frozenset[str] = frozenset()) -> list[tuple[tuple, str]]:
    """(path, text) of every text of a record the stage anonymizes (from the record schema),
    except chat messages made from the record's own fields: those are rebuilt from the
    anonymized fields instead."""
    if not isinstance(rec, dict):
        raise TypeError("record is not an object")
    for key in ("instruction", "input", "output"):
        if rec.get(key) is not None and not isinstance(rec.get(key), str):
            raise TypeError(f"field '{key}' is not a string")
    made = {user_turn(rec), rec.get("output")} if isinstance(rec.get("instruction"), str) else set()
    return [(path, text) for path, text in text_fields(rec, skip_source_copies=skip_source_copies,
                                                       recipe_texts=recipe_texts)
            if not (path[0] == "messages" and path[-1] == "content" and text in made)]


#: fields whose texts are running prose (detected as they are); other fields are often a
#: word or two taken from them
RUNNING_FIELDS = frozenset({"instruction", "input", "output", "messages", "context"})


def _in_context(text: str, running: list[tuple[str, list[Finding]]]) -> list[Finding]:
    """Findings of ``text`` read where it stands inside a running text of the record."""
    for whole, found in running:
        at = whole.find(text)
        if at < 0:
            continue
        end = at + len(text)
        return [Finding(max(f.start, at) - at, min(f.end, end) - at, f.type, f.score, f.recognizer)
                for f in found if f.start < end and f.end > at]
    return []


def _propagate_names(plan: list[tuple[tuple, str]], found: list[list[Finding]],
                     detector: PhiDetector) -> list[list[Finding]]:
    """A name found once in a record is a name everywhere in it: "Mr. Smith" in the output
    makes "Smith" in the context a NAME too (NER often sees a name in one sentence only)."""
    words = set()
    for (_, text), fnd in zip(plan, found):
        for f in fnd:
            if f.type == "NAME":
                for w in re.findall(r"[A-Z][A-Za-z'\u2019-]+", text[f.start:f.end]):
                    if len(w) > 2 and not detector.is_medicine_word(w):
                        words.add(w)
    if not words:
        return found
    rx = re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                    + r")(?![\w-])")
    out = []
    for (_, text), fnd in zip(plan, found):
        extra = [Finding(m.start(), m.end(), "NAME", 0.6, "name_propagation")
                 for m in rx.finditer(text)
                 if all(m.end() <= f.start or f.end <= m.start() for f in fnd)]
        out.append(sorted(fnd + extra, key=lambda f: f.start) if extra else fnd)
    return out
