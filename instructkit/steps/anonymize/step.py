"""The anonymize stage: every text of a record, PHI replaced, counts (never values) kept.

Texts of a batch of records go through the detector together (one ``nlp.pipe``); each
record gets its own operator instance so surrogates are consistent across its instruction,
input, output, messages and context. A canary self-test runs on copies of the first
records: synthetic PHI is injected, anonymized the same way, and every canary value must
be gone (the copies are then thrown away).
"""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from instructkit.records import Record, user_turn
from instructkit.steps.base import Step
from instructkit.steps.anonymize.detect import PHI_TYPES, Finding, PhiDetector
from instructkit.steps.anonymize.operators import OPERATORS, apply_findings, make_operator

logger = logging.getLogger("instructkit")

__all__ = ["AnonymizeStep"]

DEFAULTS: dict[str, Any] = {
    "operator": "placeholder",
    "entities": None,
    "score_threshold": 0.5,
    "n_process": 1,
    "batch_size": 32,
    "batch_records": 64,
    "keep_states_and_countries": True,
    "deny_terms": [],
    "max_shift_days": 365,
    "hash_salt": None,
    "canary": {"enabled": True, "records": 2},
}


class AnonymizeStep(Step):
    """Replace PHI in instruction, input, output, messages and context texts."""

    name = "anonymize"

    def __init__(self, operator: str = "placeholder", *, detector: PhiDetector | None = None,
                 seed: int = 0, entities: Iterable[str] | None = None,
                 score_threshold: float = 0.5, n_process: int = 1, batch_size: int = 32,
                 batch_records: int = 64, keep_states_and_countries: bool = True,
                 deny_terms: Iterable[str] = (), max_shift_days: int = 365,
                 hash_salt: str | None = None, canary: bool = True, canary_records: int = 2) -> None:
        super().__init__()
        if operator not in OPERATORS:
            raise ValueError(f"unknown operator {operator!r}; choose one of {', '.join(OPERATORS)}")
        self.operator_name = operator
        self.operator = make_operator(operator, seed=seed, salt=hash_salt,
                                      max_shift_days=max_shift_days)
        self.detector = detector or PhiDetector(
            entities=entities, score_threshold=score_threshold, n_process=n_process,
            batch_size=batch_size, keep_states_and_countries=keep_states_and_countries,
            extra_deny=deny_terms)
        self.seed = seed
        self.batch_records = max(1, int(batch_records))
        self.canary_enabled = canary
        self.canary_records = max(1, int(canary_records))
        self._reset()

    def _reset(self) -> None:
        self.replaced: Counter[str] = Counter()
        self.records_changed = 0
        self.canary_result: dict[str, Any] | None = None

    def bind(self, quarantine: Any) -> "AnonymizeStep":
        super().bind(quarantine)
        self._reset()
        return self

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: Any) -> "AnonymizeStep":
        cfg = {**DEFAULTS, **(config or {})}
        canary = cfg.get("canary", True)
        if isinstance(canary, bool):
            canary = {"enabled": canary}
        canary = {**DEFAULTS["canary"], **canary}
        det_key = ("anonymize.detector", tuple(sorted(cfg["entities"] or PHI_TYPES)),
                   float(cfg["score_threshold"]), int(cfg["n_process"]), int(cfg["batch_size"]),
                   bool(cfg["keep_states_and_countries"]), tuple(cfg["deny_terms"]))
        detector = ctx.shared(repr(det_key), lambda: PhiDetector(
            entities=cfg["entities"], score_threshold=float(cfg["score_threshold"]),
            n_process=int(cfg["n_process"]), batch_size=int(cfg["batch_size"]),
            keep_states_and_countries=bool(cfg["keep_states_and_countries"]),
            extra_deny=cfg["deny_terms"]))
        return cls(cfg["operator"], detector=detector, seed=int(getattr(ctx, "seed", 0) or 0),
                   batch_records=int(cfg["batch_records"]), max_shift_days=int(cfg["max_shift_days"]),
                   hash_salt=cfg["hash_salt"], canary=bool(canary["enabled"]),
                   canary_records=int(canary["records"]))

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
        for rec, result in zip(batch, self.anonymize_records(batch)):
            if isinstance(result, Exception):
                # the quarantine scrubs every string it writes, so the record lands redacted
                self.drop(rec, "anonymize_failed", error=type(result).__name__)
                continue
            counts = result["provenance"]["anonymization"]["replaced"]
            if counts:
                self.records_changed += 1
                self.replaced.update(counts)
            yield result

    def anonymize_records(self, records: list[Record]) -> list[Record | Exception]:
        """Anonymized copies of ``records`` (an exception in place of a record that failed)."""
        plans: list[list[tuple[tuple, str]] | Exception] = []
        texts: list[str] = []
        for rec in records:
            try:
                plan = _texts_of(rec)
            except Exception as exc:  # noqa: BLE001 - a bad record is quarantined, not fatal
                plans.append(exc)
                continue
            plans.append(plan)
            texts.extend(t for _, t in plan)
        findings = self.detector.detect_many(texts)
        out: list[Record | Exception] = []
        i = 0
        for rec, plan in zip(records, plans):
            if isinstance(plan, Exception):
                out.append(plan)
                continue
            found = findings[i:i + len(plan)]
            i += len(plan)
            try:
                out.append(self._rewrite(rec, plan, found))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def _rewrite(self, rec: Record, plan: list[tuple[tuple, str]], found: list[list[Any]]) -> Record:
        new = copy.deepcopy(rec)
        op = self.operator.for_record(str(rec.get("id") or rec.get("source", {}).get("record_id", "")))
        counts: Counter[str] = Counter()
        spans: dict[str, list[list[int]]] = {}
        found = _propagate_names(plan, found, self.detector)
        for (path, text), fnd in zip(plan, found):
            if not fnd:
                continue
            new_text, repl = apply_findings(text, fnd, op)
            _set(new, path, new_text)
            counts.update(t for _, _, t in repl)
            spans[".".join(map(str, path))] = [[s, e] for s, e, _ in repl]
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

    # -- quarantine scrubber -----------------------------------------------------------------
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
            "operator": self.operator_name,
            "replaced": dict(sorted(self.replaced.items())),
            "replaced_total": sum(self.replaced.values()),
            "records_changed": self.records_changed,
            "canary": canary,
        }}

    def card_section(self) -> str:
        s = self.summary()["anonymization"]
        lines = ["### Anonymization", "",
                 f"PHI was replaced with the **{s['operator']}** operator "
                 "(Presidio on spaCy with clinical recognizers for the HIPAA Safe Harbor identifiers).",
                 f"{s['replaced_total']} spans were replaced in {s['records_changed']} records."]
        if s["replaced"]:
            lines += ["", "| type | replaced |", "|---|---:|"]
            lines += [f"| {t} | {n} |" for t, n in s["replaced"].items()]
        c = s["canary"]
        if c.get("enabled"):
            verdict = "passed" if c.get("passed") else "FAILED"
            lines += ["", f"Canary self-test {verdict}: {c.get('removed', 0)} of {c.get('values', 0)} "
                          "injected synthetic identifiers were removed."]
        return "\n".join(lines) + "\n"


def _texts_of(rec: Record) -> list[tuple[tuple, str]]:
    """(path, text) of every free text of a record the stage anonymizes."""
    if not isinstance(rec, dict):
        raise TypeError("record is not an object")
    plan: list[tuple[tuple, str]] = []
    for key in ("instruction", "input", "output"):
        val = rec.get(key)
        if val is None:
            continue
        if not isinstance(val, str):
            raise TypeError(f"field '{key}' is not a string")
        plan.append(((key,), val))
    for j, msg in enumerate(rec.get("messages") or []):
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str) and content not in (user_turn(rec), rec.get("output")):
            plan.append((("messages", j, "content"), content))
    for j, ctx in enumerate(rec.get("context") or []):
        if isinstance(ctx, dict) and isinstance(ctx.get("text"), str):
            plan.append((("context", j, "text"), ctx["text"]))
    return plan


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


def _set(obj: Any, path: tuple, value: str) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value
