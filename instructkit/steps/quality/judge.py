"""The optional ``judge`` stage: an LLM scores every record 1-5 on the rubric in
``prompts/judge/rubric.yaml`` (medical correctness, helpfulness, faithfulness to the given
context, safety, escalation when urgent) through the LLM client's structured output and
response cache. Scores stay on the record in ``meta["judge"]``; a record under the
recipe's minimum is quarantined with reason ``judge_below_min``.
"""

from __future__ import annotations

import functools
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import jinja2

from instructkit._exceptions import BudgetExceeded, RecipeError, TemplateError
from instructkit._resources import load_prompt_yaml
from instructkit.context import RunContext
from instructkit.records import Record, content_hash
from instructkit.steps.base import Quarantine, Step


__all__ = ["JudgeStep", "Rubric", "load_rubric"]


class Rubric:
    """The judge's criteria, prompt templates, answer schema and sampling params."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        try:
            self.id: str = data["id"]
            self.version = data.get("version", 1)
            scale = data.get("scale") or {}
            self.min, self.max = int(scale.get("min", 1)), int(scale.get("max", 5))
            self.criteria: list[dict[str, Any]] = [dict(c) for c in data["criteria"]]
            self.weights = {c["name"]: float(c.get("weight", 1.0)) for c in self.criteria}
            self.params: dict[str, Any] = dict(data.get("params") or {})
            env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                     trim_blocks=True, lstrip_blocks=True)
            self._system = env.from_string(data["system"])
            self._user = env.from_string(data["user"])
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"judge rubric '{origin}': missing or malformed key {exc}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"judge rubric '{origin}': template syntax error line {exc.lineno}: {exc.message}") from None
        self.hash = content_hash(data, length=16)
        self.names = [c["name"] for c in self.criteria]
        self.schema = {
            "type": "object",
            "required": self.names,
            "additionalProperties": False,
            # enum rather than minimum/maximum: every JSON-schema grammar supports it
            "properties": {n: {"type": "integer", "enum": list(range(self.min, self.max + 1))}
                           for n in self.names},
        }

    def messages(self, record: Record, max_chars: int) -> list[dict[str, str]]:
        def cut(text: Any) -> str:
            text = str(text or "")
            return text if len(text) <= max_chars else text[:max_chars] + " [...]"

        ctx = [cut(c.get("text")) for c in (record.get("context") or []) if isinstance(c, dict)]
        example = "{" + ", ".join(f'"{n}": <{self.min}-{self.max}>' for n in self.names) + "}"
        return [{"role": "system", "content": self._system.render(criteria=self.criteria).strip()},
                {"role": "user", "content": self._user.render(
                    instruction=cut(record.get("instruction")), input=cut(record.get("input")),
                    context=ctx, output=cut(record.get("output")), example=example).strip()}]

    def overall(self, scores: dict[str, int]) -> float:
        total = sum(self.weights[n] for n in scores)
        return round(sum(self.weights[n] * s for n, s in scores.items()) / total, 2) if total else 0.0


@functools.cache
def load_rubric(name: str = "judge/rubric") -> Rubric:
    """Load ``prompts/<name>.yaml`` (or a path to a YAML file)."""
    path, data = load_prompt_yaml(name, "judge rubric")
    return Rubric(data, path.name)


class JudgeStep(Step):
    """Score each record with the LLM judge; keep the scores, drop records under the minimum.

    ``min_score`` bounds the overall (weighted mean) score, ``min_scores`` single criteria
    (e.g. ``{"safety": 4}``). A record the judge could not score is dropped with reason
    ``judge_failed`` (``on_error: keep`` passes it on unscored instead).
    """

    name = "judge"

    def __init__(self, *, ctx: RunContext | None = None, client: Any = None,
                 rubric: str | Rubric = "judge/rubric", min_score: float | None = None,
                 min_scores: dict[str, float] | None = None, batch_size: int = 8,
                 max_chars: int = 1500, params: dict[str, Any] | None = None,
                 on_error: str = "drop", seed: int | None = None) -> None:
        super().__init__()
        self.ctx = ctx or RunContext()
        self._client = client
        self.rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
        unknown = sorted(set(min_scores or {}) - set(self.rubric.names))
        if unknown:
            raise RecipeError([f"stages.judge.min_scores.{n}: not a rubric criterion "
                               f"({', '.join(self.rubric.names)})" for n in unknown])
        if on_error not in ("drop", "keep"):
            raise RecipeError([f"stages.judge.on_error: must be 'drop' or 'keep', not {on_error!r}"])
        self.min_score = min_score
        self.min_scores = dict(min_scores or {})
        self.batch_size = max(1, int(batch_size))
        self.max_chars = int(max_chars)
        self.params = {**self.rubric.params, **(params or {})}
        self.on_error = on_error
        self.seed = self.ctx.seed if seed is None else seed
        self._reset()

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: RunContext) -> "JudgeStep":
        config = dict(config or {})
        return cls(ctx=ctx, rubric=config.get("rubric", "judge/rubric"),
                   min_score=config.get("min_score"), min_scores=config.get("min_scores"),
                   batch_size=config.get("batch_size", 8), max_chars=config.get("max_chars", 1500),
                   params=config.get("params"), on_error=config.get("on_error", "drop"))

    def _reset(self) -> None:
        self.histograms: dict[str, Counter[int]] = {n: Counter() for n in self.rubric.names}
        self.overall_scores: list[float] = []
        self.models: Counter[str] = Counter()
        self.failed = 0

    def bind(self, quarantine: Quarantine) -> "JudgeStep":
        self._reset()
        return super().bind(quarantine)

    @property
    def client(self) -> Any:
        if self._client is None:
            from instructkit.llm import llm_from_context

            self._client = llm_from_context(self.ctx)
        return self._client

    # -- running -------------------------------------------------------------------------
    def request(self, record: Record):
        from instructkit.llm import JsonRequest

        return JsonRequest(messages=self.rubric.messages(record, self.max_chars),
                           schema=self.rubric.schema, params=dict(self.params), seed=self.seed,
                           prompt_id=self.rubric.id, prompt_hash=self.rubric.hash)

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        batch: list[Record] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= self.batch_size:
                yield from self._judge(batch)
                batch = []
        if batch:
            yield from self._judge(batch)

    def _judge(self, batch: list[Record]) -> Iterator[Record]:
        try:
            results = self.client.complete_json_many([self.request(r) for r in batch])
        except BudgetExceeded as exc:
            # judge what was answered, account for the rest, then let the run stop cleanly
            partial = list(getattr(exc, "results", None) or [])
            yield from self._apply(batch[:len(partial)], partial)
            for rec in batch[len(partial):]:
                self.drop(rec, "judge_not_run", why="request budget exhausted")
            raise
        yield from self._apply(batch, results)

    def _apply(self, batch: list[Record], results: list[Any]) -> Iterator[Record]:
        for rec, res in zip(batch, results):
            scores = _scores(res, self.rubric)
            if scores is None:
                self.failed += 1
                error = (getattr(res, "error", None) or
                         ("scores missing or off the scale" if res is not None else "no answer"))[:300]
                if self.on_error == "keep":
                    yield _with_judge(rec, {"error": error, "rubric": self.rubric.id})
                else:
                    self.drop(rec, "judge_failed", error=error)
                continue
            overall = self.rubric.overall(scores)
            verdict = {"scores": scores, "overall": overall, "model": res.model,
                       "rubric": self.rubric.id, "rubric_hash": self.rubric.hash}
            judged = _with_judge(rec, verdict)
            for n, s in scores.items():
                self.histograms[n][s] += 1
            self.overall_scores.append(overall)
            self.models[res.model or "unknown"] += 1
            if self.min_score is not None and overall < float(self.min_score):
                self.drop(judged, "judge_below_min", overall=overall, min_score=self.min_score)
                continue
            low = [(n, scores[n], m) for n, m in self.min_scores.items() if scores[n] < float(m)]
            if low:
                n, s, m = low[0]
                self.drop(judged, "judge_below_min", criterion=n, score=s, min_score=m)
                continue
            yield judged

    # -- reporting -----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        n = len(self.overall_scores)
        out: dict[str, Any] = {"rubric": self.rubric.id, "rubric_hash": self.rubric.hash,
                               "scored": n, "failed": self.failed,
                               "min_score": self.min_score, "min_scores": self.min_scores,
                               "models": dict(self.models)}
        if n:
            out["overall"] = {"mean": round(statistics.fmean(self.overall_scores), 2),
                              "median": round(statistics.median(self.overall_scores), 2),
                              "min": min(self.overall_scores), "max": max(self.overall_scores)}
            out["criteria"] = {
                c: {"mean": round(sum(k * v for k, v in h.items()) / max(1, sum(h.values())), 2),
                    "histogram": {str(s): h.get(s, 0) for s in range(self.rubric.min, self.rubric.max + 1)}}
                for c, h in self.histograms.items()}
        return out

    def card_section(self) -> str:
        s = self.summary()
        if not s["scored"] and not s["failed"]:
            return ""
        models = ", ".join(f"`{m}`" for m in s["models"]) or "-"
        gate = []
        if self.min_score is not None:
            gate.append(f"overall ≥ {self.min_score}")
        gate += [f"{k} ≥ {v}" for k, v in self.min_scores.items()]
        lines = [
            "### LLM judge scores",
            "",
            f"Each record was scored 1-5 by {models} on the rubric `{s['rubric']}` "
            f"(hash `{s['rubric_hash']}`); the overall score is the weighted mean. "
            f"{s['scored']} records scored, {s['failed']} could not be scored"
            + (f"; kept only {', '.join(gate)}." if gate else "; no minimum was set.")
            + " Scores from a small model are a rough signal, not a clinical review.",
            "",
        ]
        if s["scored"]:
            scale = list(range(self.rubric.min, self.rubric.max + 1))
            lines.append("| criterion | mean | " + " | ".join(str(x) for x in scale) + " |")
            lines.append("|---|---|" + "---|" * len(scale))
            for c, d in s["criteria"].items():
                lines.append(f"| {c} | {d['mean']:.2f} | " +
                             " | ".join(str(d["histogram"][str(x)]) for x in scale) + " |")
            o = s["overall"]
            lines += ["", f"Overall: mean {o['mean']:.2f}, median {o['median']:.2f}, "
                          f"range {o['min']:.2f}-{o['max']:.2f}."]
        return "\n".join(lines) + "\n"


def _scores(res: Any, rubric: Rubric) -> dict[str, int] | None:
    """The criterion scores of a judge answer, or None when it is missing or off the scale."""
    data = getattr(res, "data", None) if res is not None and getattr(res, "ok", False) else None
    if not isinstance(data, dict):
        return None
    try:
        scores = {n: int(data[n]) for n in rubric.names}
    except (KeyError, TypeError, ValueError):
        return None
    if any(not rubric.min <= s <= rubric.max for s in scores.values()):
        return None
    return scores


def _with_judge(record: Record, verdict: dict[str, Any]) -> Record:
    """A copy of ``record`` with ``meta["judge"]`` set (the input record is not changed)."""
    meta = dict(record.get("meta") or {})
    meta["judge"] = verdict
    return {**record, "meta": meta}
