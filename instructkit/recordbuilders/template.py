"""The template builder: human-written instruction templates applied to source rows.

A template set (``prompts/templates/<id>.yaml``) declares its variables, several
differently worded instruction phrasings, how to render ``input``/``output``/``meta`` from
a row, and few-shot examples. Which phrasing and variant a row gets is chosen from the run
seed and the row's id, so a build is reproducible and does not depend on row order.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from instructkit._exceptions import RenderLimitError, TemplateError
from instructkit._resources import load_prompt_yaml, prompts_dir
from instructkit.recordbuilders.base import Builder
from instructkit.context import RunContext
from instructkit.records import Record, content_hash, make_record
from instructkit.recipe.sources import Source, SourceRow

__all__ = ["TemplateSet", "TemplateBuilder", "load_template_set", "template_path"]

_TYPES = {"str": str, "list": list, "mapping": dict}


def template_path(template_id: str) -> Path:
    """A template set id names a file inside ``prompts/templates/``, never outside it."""
    from instructkit._resources import prompt_file

    return prompt_file(template_id, "templates", "template set")


def _clean(value: Any) -> str:
    """Collapse runs of whitespace (source XML/CSV is full of indentation)."""
    return re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v\n]*", "\n", re.sub(r"[ \t]+", " ", str(value))).strip()


def _env():
    from instructkit._templating import sandboxed_env

    return sandboxed_env(trim=False, filters={"clean": _clean})


#: private-use characters around every ``{{ expression }}`` a marked rendering outputs
FILL_OPEN, FILL_CLOSE = "\ue000", "\ue001"


def _mark(value: Any) -> str:
    return f"{FILL_OPEN}{value}{FILL_CLOSE}"


@functools.cache
def _marked_env():
    """The template environment (same sandbox and bounds), with every ``{{ expression }}``
    output wrapped in ``FILL_OPEN``/``FILL_CLOSE``: what a row filled in, told apart from the
    template's literal text. Its own environment: the shared one must stay unmarked."""
    from jinja2 import StrictUndefined

    from instructkit._templating import _bounded_env_class

    env = _bounded_env_class()(undefined=StrictUndefined, autoescape=False, trim_blocks=False,
                               lstrip_blocks=False, keep_trailing_newline=False, finalize=_mark)
    env.filters["clean"] = _clean
    return env


def filled_spans(marked: str, plain: str) -> list[list[int]] | None:
    """Character ranges of ``plain`` (a stripped rendering) that ``{{ expressions }}`` wrote,
    from the same rendering with markers; None when the two do not agree (a value holding a
    marker character): then nothing of the field counts as template text."""
    spans: list[list[int]] = []
    out: list[str] = []
    pos, depth, start = 0, 0, 0
    for piece in re.split(f"([{FILL_OPEN}{FILL_CLOSE}])", marked):
        if piece == FILL_OPEN:
            if depth == 0:
                start = pos
            depth += 1
        elif piece == FILL_CLOSE:
            depth -= 1
            if depth < 0:
                return None
            if depth == 0 and pos > start:
                spans.append([start, pos])
        else:
            out.append(piece)
            pos += len(piece)
    raw = "".join(out)
    if depth != 0 or raw.strip() != plain:
        return None
    lead = len(raw) - len(raw.lstrip())
    merged: list[list[int]] = []
    for s, e in spans:
        s, e = max(0, s - lead), min(len(plain), e - lead)
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged


@dataclass(frozen=True)
class Phrasing:
    id: str
    instruction: str


@dataclass
class VariableSpec:
    name: str
    type: str = "str"
    required: bool = True
    split: str | None = None


class TemplateSet:
    """A task's instruction phrasings and renderers, checked when loaded."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self.origin = origin
        try:
            self.id: str = data["id"]
            self.task: str = data.get("task", self.id)
            self.description: str = data.get("description", "")
            self.variables = {n: _var_spec(n, s) for n, s in (data.get("variables") or {}).items()}
            self.phrasings = [Phrasing(p["id"], p["instruction"]) for p in data["phrasings"]]
            self.input_tmpl: str = data.get("input", "")
            self.output_tmpl: str = data["output"]
            self.meta_tmpl: dict[str, str] = dict(data.get("meta") or {})
            self.meta_vars: list[str] = list(data.get("meta_vars") or [])
            fs = data.get("few_shot") or {}
            self.few_shot_k: int = int(fs.get("k", 2))
            self.few_shot_header: str = fs.get("header", "Examples:")
            self.few_shot_example: str = fs.get("example", "Input: {{ input }}\nOutput: {{ output }}")
            self.few_shot_examples: list[dict[str, str]] = list(fs.get("examples") or [])
            self.card: dict[str, Any] = dict(data.get("card") or {})
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"template '{origin}': missing or malformed key {exc}") from None
        if len(self.phrasings) < 3:
            raise TemplateError(f"template '{self.id}': needs at least three phrasings, has {len(self.phrasings)}")
        if len({p.id for p in self.phrasings}) != len(self.phrasings):
            raise TemplateError(f"template '{self.id}': phrasing ids must be unique")
        self.hash = content_hash(data, length=16)
        self._compile()

    def _compile(self) -> None:
        env = _env()
        declared = set(self.variables)
        parts: list[tuple[str, str, set[str]]] = [
            *((f"phrasing '{p.id}'", p.instruction, declared) for p in self.phrasings),
            ("input", self.input_tmpl, declared),
            ("output", self.output_tmpl, declared),
            *((f"meta.{k}", v, declared) for k, v in self.meta_tmpl.items()),
            ("few_shot.example", self.few_shot_example, {"input", "output"}),
        ]
        self._compiled: dict[str, jinja2.Template] = {}
        self._marked: dict[str, jinja2.Template] = {}
        for where, text, allowed in parts:
            try:
                ast = env.parse(text)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"template '{self.id}' {where}: syntax error line {exc.lineno}: {exc.message}") from None
            undeclared = jinja2.meta.find_undeclared_variables(ast) - allowed
            if undeclared:
                raise TemplateError(
                    f"template '{self.id}' {where}: undefined variable(s) "
                    f"{', '.join(sorted(undeclared))} (declared: {', '.join(sorted(allowed)) or 'none'})")
            self._compiled[where] = env.from_string(text)
            self._marked[where] = _marked_env().from_string(text)
        for name in self.meta_vars:
            if name not in declared:
                raise TemplateError(f"template '{self.id}' meta_vars: undefined variable '{name}'")
        for i, ex in enumerate(self.few_shot_examples):
            if not {"input", "output"} <= set(ex):
                raise TemplateError(f"template '{self.id}' few_shot.examples[{i}]: needs input and output")

    # -- rendering ----------------------------------------------------------------------
    def bind(self, data: dict[str, Any], columns: dict[str, str]) -> tuple[dict[str, Any], str | None, str | None]:
        """Map a row to template variables. Returns (values, problem, field) — problem set
        when a required variable is missing, empty or of the wrong type."""
        values: dict[str, Any] = {}
        for name, spec in self.variables.items():
            field_name = columns.get(name, name)
            v = data.get(field_name)
            if spec.split and isinstance(v, str):
                v = [s.strip() for s in v.split(spec.split) if s.strip()]
            if v is None or (isinstance(v, (str, list, dict)) and not v) or \
                    (isinstance(v, str) and not v.strip()):
                if spec.required:
                    return values, "missing_field", field_name
                values[name] = None
                continue
            want = _TYPES[spec.type]
            if want is str and isinstance(v, (int, float, bool)):
                v = str(v)
            if not isinstance(v, want):
                return values, "wrong_type", field_name
            values[name] = v
        return values, None, None

    def render(self, values: dict[str, Any], phrasing: Phrasing, few_shot: list[dict[str, str]]) -> dict[str, Any]:
        c = self._compiled
        instruction = c[f"phrasing '{phrasing.id}'"].render(**values).strip()
        if few_shot:
            instruction = f"{instruction}{self.few_shot_tail(few_shot)}"
        meta = {k: c[f"meta.{k}"].render(**values).strip() for k in self.meta_tmpl}
        meta.update({k: values.get(k) for k in self.meta_vars})
        return {"instruction": instruction,
                "input": c["input"].render(**values).strip(),
                "output": c["output"].render(**values).strip(),
                "meta": meta}

    def few_shot_tail(self, few_shot: list[dict[str, str]]) -> str:
        """What few-shot examples add to an instruction: the header and the shipped example
        turns, all of it the template's own text."""
        shots = "\n\n".join(self._compiled["few_shot.example"].render(**ex).strip() for ex in few_shot)
        return f"\n\n{self.few_shot_header.strip()}\n\n{shots}"

    def filled(self, values: dict[str, Any], phrasing: Phrasing, parts: dict[str, Any]) -> dict[str, list[list[int]]]:
        """For each rendered field of ``parts`` (``instruction``, ``input``, ``output``,
        ``meta.<k>`` of the ``meta`` templates): the character ranges its ``{{ expressions }}``
        wrote from the row. The rest of the field is the template's literal text (phrasing
        words, labels such as "Findings:", the few-shot header and example turns). A field
        whose marked rendering does not agree with ``parts`` is left out (all of it counts as
        filled). ``meta_vars`` are the row's values themselves: never template text."""
        m = self._marked
        wheres = {"instruction": f"phrasing '{phrasing.id}'", "input": "input", "output": "output",
                  **{f"meta.{k}": f"meta.{k}" for k in self.meta_tmpl}}
        out: dict[str, list[list[int]]] = {}
        for field, where in wheres.items():
            plain = parts["meta"].get(field[5:]) if field.startswith("meta.") else parts[field]
            if not isinstance(plain, str):
                continue
            head = plain
            if field == "instruction" and parts.get("few_shot"):
                tail = self.few_shot_tail(parts["few_shot"])
                if not plain.endswith(tail):
                    continue
                head = plain[: len(plain) - len(tail)]
            spans = filled_spans(m[where].render(**values), head)
            if spans is not None:
                out[field] = spans
        return out

    def literal_texts(self) -> frozenset[str]:
        """Every piece of literal text this set's templates can write: the text between
        their tags (``TemplateData``), the few-shot header and the rendered example turns.
        What a record claims as template text must be made of these."""
        cached = getattr(self, "_literals", None)
        if cached is not None:
            return cached
        from jinja2 import nodes

        env = _env()
        texts = [p.instruction for p in self.phrasings] + [self.input_tmpl, self.output_tmpl,
                                                           *self.meta_tmpl.values()]
        found: set[str] = set()
        for text in texts:
            for node in env.parse(text).find_all(nodes.TemplateData):
                if node.data:
                    found.add(node.data)
        if self.few_shot_examples:
            found.add(f"\n\n{self.few_shot_header.strip()}\n\n")
            found.add("\n\n")
            for ex in self.few_shot_examples:
                found.add(self._compiled["few_shot.example"].render(**ex).strip())
        self._literals = frozenset(found)
        return self._literals


def _var_spec(name: str, spec: Any) -> VariableSpec:
    if isinstance(spec, str):
        spec = {"type": spec}
    spec = dict(spec or {})
    t = spec.get("type", "str")
    if t not in _TYPES:
        raise TemplateError(f"variable '{name}': type must be one of {sorted(_TYPES)}")
    return VariableSpec(name, t, bool(spec.get("required", True)), spec.get("split"))


def field_hash(text: str) -> str:
    """The sha256 prefix ``provenance.template_text`` keeps of a field as it was rendered."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: template sets this process rendered records with, by (id, hash): the anonymize stage
#: checks a record's template text against the set that made it (a recipe's own set too)
_RENDERED: dict[tuple[str, str], TemplateSet] = {}


def remember_template_set(tset: TemplateSet) -> None:
    _RENDERED.setdefault((tset.id, tset.hash), tset)


def find_template_set(template_id: str, template_hash: str) -> TemplateSet | None:
    """The template set with this id and hash: one rendered in this process, else the one
    shipped in ``prompts/templates/`` when its hash agrees; None otherwise."""
    tset = _RENDERED.get((template_id, template_hash))
    if tset is not None:
        return tset
    try:
        tset = load_template_set(template_id)
    except Exception:  # noqa: BLE001 - unknown here: the record's fields are scanned whole
        return None
    return tset if tset.hash == template_hash else None


@functools.cache
def load_template_set(template_id: str) -> TemplateSet:
    """Load ``prompts/templates/<id>.yaml`` (or a path), failing on undefined variables."""
    path, data = load_prompt_yaml(template_id, "template set", "templates")
    return TemplateSet(data, path.name)


class TemplateBuilder(Builder):
    """Apply a task's template set to rows of one or more sources."""

    method = "template"

    def __init__(self, task: str, sources: Iterable[Source], *, templates: str | TemplateSet | None = None,
                 columns: dict[str, str] | None = None, seed: int = 0, few_shot_share: float = 0.25,
                 phrasings: list[str] | None = None, mapping: dict[str, Any] | None = None,
                 system_prompt: str | None = None, name: str | None = None) -> None:
        self.name = name or f"template:{task}"
        super().__init__()
        self.task = task
        self.sources = list(sources)
        self.tset = templates if isinstance(templates, TemplateSet) else load_template_set(templates or task)
        self.columns = dict(columns or {})
        self.seed = seed
        self.few_shot_share = few_shot_share
        self.system_prompt = system_prompt
        allowed = set(phrasings or [p.id for p in self.tset.phrasings])
        unknown = allowed - {p.id for p in self.tset.phrasings}
        if unknown:
            raise TemplateError(f"template '{self.tset.id}': no phrasing(s) {', '.join(sorted(unknown))}")
        self.phrasings = [p for p in self.tset.phrasings if p.id in allowed]
        self.mapping = mapping
        self._rules = [(re.compile(r["pattern"], re.IGNORECASE), r["label"])
                       for r in (mapping or {}).get("rules", [])]
        self.used: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()

    def reset(self) -> None:
        self.used, self.missing = Counter(), Counter()

    @classmethod
    def from_config(cls, config: dict[str, Any], sources: dict[str, Source], ctx: RunContext) -> "TemplateBuilder":
        return cls(config["task"], [sources[s] for s in config["sources"]],
                   templates=config.get("templates"), columns=config.get("columns"),
                   seed=ctx.seed, few_shot_share=config.get("few_shot_share", 0.25),
                   phrasings=config.get("phrasings"), mapping=config.get("mapping"),
                   system_prompt=(ctx.recipe.get("output") or {}).get("system_prompt"),
                   name=config.get("name"))

    def inputs(self) -> Iterator[tuple[Source, SourceRow]]:
        for src in self.sources:
            for row in src.rows():
                yield src, row

    def process(self, inputs: Iterable[tuple[Source, SourceRow]]) -> Iterator[Record]:
        for src, row in inputs:
            try:
                rec = self.make(src, row)
            except Exception as exc:  # noqa: BLE001 - one bad row must not end the build
                self._quarantine_row(src, row, "build_failed", error=type(exc).__name__)
                continue
            if rec is not None:
                yield rec

    def _quarantine_row(self, src: Source, row: SourceRow, reason: str, **details: Any) -> None:
        # a row that never became a record: keep where it came from, and the row itself
        entry_source = {"name": src.name, "record_id": row.record_id, "location": row.location}
        self.drop(None, reason, source=entry_source, row=row.data or None, **details)

    def make(self, src: Source, row: SourceRow) -> Record | None:
        """Turn one row into a record, or quarantine it and return None."""
        if row.error:
            self._quarantine_row(src, row, row.reason or "unreadable_row", error=row.error)
            return None
        data = row.data
        if self.mapping:
            raw = data.get(self.mapping["field"])
            label = next((lab for rx, lab in self._rules if isinstance(raw, str) and rx.search(raw)), None)
            if label is None:
                self._quarantine_row(src, row, "unmapped_value", field=self.mapping["field"])
                return None
            data = {**data, self.mapping["to"]: label}
        values, problem, field_name = self.tset.bind(data, self.columns)
        if problem:
            if problem == "missing_field":
                self.missing[str(field_name)] += 1
            self._quarantine_row(src, row, problem, field=field_name)
            return None
        if self.mapping:
            values["canonical_vocabulary"] = sorted({r["label"] for r in self.mapping["rules"]})
        rng = random.Random(int(content_hash(self.seed, self.tset.id, src.name, row.record_id)[:16], 16))
        phrasing = rng.choice(self.phrasings)
        few = []
        if self.tset.few_shot_examples and rng.random() < self.few_shot_share:
            k = min(self.tset.few_shot_k, len(self.tset.few_shot_examples))
            few = rng.sample(self.tset.few_shot_examples, k)
        try:
            parts = self.tset.render(values, phrasing, few)
        except jinja2.TemplateError as exc:
            self._quarantine_row(src, row, "render_error", error=f"{type(exc).__name__}")
            return None
        except RenderLimitError as exc:  # one runaway rendering: this record only
            self._quarantine_row(src, row, exc.reason, error=str(exc))
            return None
        if not parts["output"]:
            self._quarantine_row(src, row, "empty_output")
            return None
        if "canonical_vocabulary" in values:
            parts["meta"]["canonical_vocabulary"] = values["canonical_vocabulary"]
        variant = "few_shot" if few else "zero_shot"
        self.used[f"{phrasing.id}/{variant}"] += 1
        template_text = self.template_text(values, phrasing, {**parts, "few_shot": few})
        remember_template_set(self.tset)
        return make_record(
            task=self.task, method="template", instruction=parts["instruction"],
            input=parts["input"], output=parts["output"], source=src.record_source(row),
            provenance={"builder": "template", "builder_name": self.name, "seed": self.seed,
                        "template_id": self.tset.id, "template_hash": self.tset.hash,
                        "phrasing_id": phrasing.id, "variant": variant,
                        **({"template_text": template_text} if template_text else {})},
            system_prompt=self.system_prompt, meta=parts["meta"])

    def template_text(self, values: dict[str, Any], phrasing: Phrasing,
                      parts: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """``provenance.template_text``: per rendered field, its sha256 prefix and the ranges
        the row filled in, so the anonymize stage scans the row's text and leaves the
        template's own words alone (``steps/anonymize/public_text.py``). Offsets and hashes
        only: no text. Never fails the record: without it the whole field is scanned."""
        try:
            filled = self.tset.filled(values, phrasing, parts)
        except Exception:  # noqa: BLE001 - the record is still built, its fields scanned whole
            return {}
        out = {}
        for field, spans in filled.items():
            text = parts["meta"][field[5:]] if field.startswith("meta.") else parts[field]
            out[field] = {"sha": field_hash(text), "filled": spans}
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phrasings_used": dict(sorted(self.used.items()))}
        if self.missing:
            out["missing_fields"] = dict(sorted(self.missing.items()))
        return out

    def settings(self) -> dict[str, Any]:
        return {"task": self.task, "template_id": self.tset.id, "template_hash": self.tset.hash,
                "sources": [s.name for s in self.sources]}

    def card_section(self, stats: Any) -> str:
        used = ", ".join(f"`{k}` ×{v}" for k, v in sorted(
            ((stats.extra or {}).get("phrasings_used") or {}).items())) or "none"
        return (f"**{self.name}** (template builder): task `{self.task}`, template set "
                f"`{self.tset.id}` (hash `{self.tset.hash}`), {len(self.phrasings)} phrasings; "
                f"phrasing/variant use: {used}.")
