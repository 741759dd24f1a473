"""The synthetic builder: instruction records through the run's LLM client, three ways:

- ``backtranslate`` (Li et al. 2023): real answer text from a licensed source, the model
  writes the request it answers (``backtranslate.py``); works on the embedded model;
- Self-Instruct and Evol-Instruct from the project's seed pool (for capable endpoints: a
  small model writes mostly junk there, which the validate stage's filters catch).

Determinism: every choice (which seeds are shown, which evolution is applied, the seed of
each request) is drawn from the run seed and the record's index, and requests go out in
fixed batches whose results are used in order. With the response cache, a rerun asks for
nothing, and a run killed midway resumes where it stopped and ends with the same records.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from instructkit._exceptions import BudgetExceeded, RecipeError
from instructkit.recordbuilders.base import Builder
from instructkit.records import Record, content_hash, make_record
from instructkit.recordbuilders.synthetic.backtranslate import BacktranslateConfig, Backtranslation
from instructkit.recordbuilders.synthetic.filters import NoveltyFilter, elimination_reason, instruction_problem
from instructkit.recordbuilders.synthetic.prompts import PromptSet, load_prompt_set
from instructkit.recordbuilders.synthetic.seeds import SeedPool, SeedTask, load_seed_pool

logger = logging.getLogger("instructkit")

__all__ = ["SyntheticBuilder", "SelfInstructConfig", "EvolInstructConfig", "BacktranslateConfig"]

EVOL_OPERATIONS = ("add_constraints", "deepen", "concretise", "increase_reasoning",
                   "complicate_input", "breadth")
DEFAULT_PARAMS = {"temperature": 0.7, "max_tokens": 160}


@dataclass
class SelfInstructConfig:
    n: int = 8
    k: int = 3
    machine_examples: int = 1
    rouge_threshold: float = 0.7
    max_attempts: int | None = None  # default 3 * n
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvolInstructConfig:
    n: int = 8
    operations: list[str] = field(default_factory=lambda: list(EVOL_OPERATIONS))
    rounds: int = 1
    same_threshold: float = 0.9
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    """One record to build: everything decided up front from the seed."""

    method: str
    index: int
    category: str
    examples: list[Any] = field(default_factory=list)
    base: SeedTask | None = None
    operations: list[str] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)
    # filled while building
    instruction: str = ""
    input: str = ""
    output: str = ""
    prompts: list[tuple[str, str]] = field(default_factory=list)
    model: str | None = None
    provider: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seed_task_ids(self) -> list[str]:
        if self.base is not None:
            return [self.base.id]
        return [e.id for e in self.examples]

    @property
    def record_key(self) -> str:
        return f"{self.method}/{self.index:05d}"


def _derive_seed(*parts: Any) -> int:
    return int(content_hash(*parts)[:8], 16) & 0x7FFFFFFF


class SyntheticBuilder(Builder):
    """Self-Instruct and Evol-Instruct over the project's clinician-style seed tasks."""

    name = "synthetic"
    method = "synthetic"

    def __init__(self, ctx, *, self_instruct: SelfInstructConfig | None = None,
                 evol_instruct: EvolInstructConfig | None = None, seed_tasks: str | None = None,
                 categories: list[str] | None = None, params: dict[str, Any] | None = None,
                 batch_size: int = 8, client=None, name: str | None = None,
                 backtranslate: BacktranslateConfig | None = None,
                 sources: dict[str, Any] | None = None, seed_tasks_phi: bool | None = None) -> None:
        super().__init__()
        if name:
            self.name = name
            self.stats.name = name
            self._named = True
        self.ctx = ctx
        self.pool: SeedPool = load_seed_pool(seed_tasks)
        # a seed file of your own may hold PHI (the project's pool does not): its tasks are
        # anonymized before any of them is shown to the model
        if (seed_tasks_phi if seed_tasks_phi is not None else bool(seed_tasks)) and ctx is not None:
            self.pool = _anonymized_pool(self.pool, ctx)
        elif hasattr(ctx, "phi_free_copies"):
            # the project's pool (or one declared seed_tasks_phi: false) holds no PHI, so
            # neither does what a model writes from it: the anonymize stage leaves those
            # records as they are (steps/anonymize/public_text.py); the audit still reads them
            ctx.phi_free_copies.add(self.pool.name)
        self.categories = list(categories or self.pool.categories)
        unknown = [c for c in self.categories if not self.pool.by_category(c)]
        if unknown:
            raise RecipeError([f"builders.synthetic.categories: no seed tasks for {', '.join(unknown)}"])
        self.si = self_instruct
        self.evol = evol_instruct
        if self.evol:
            bad = [o for o in self.evol.operations if o not in EVOL_OPERATIONS]
            if bad:
                raise RecipeError([f"builders.synthetic.evol_instruct.operations: unknown {', '.join(bad)}"])
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        #: what the recipe set itself: it overrides a few-shot prompt's own params
        self.params_override = dict(params or {})
        self.batch_size = max(1, batch_size)
        self._client = client
        self.si_prompts: PromptSet = load_prompt_set("synthetic/self_instruct")
        self.evol_prompts: PromptSet = load_prompt_set("synthetic/evol_instruct")
        self.counts: Counter[str] = Counter()
        self.stopped: str | None = None
        self.bt: Backtranslation | None = (Backtranslation(self, backtranslate, sources)
                                           if backtranslate and backtranslate.n > 0 else None)
        self._cap_to_limit(ctx.limit if ctx is not None else None)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any], sources: dict[str, Any], ctx) -> "SyntheticBuilder":
        cfg = dict(config)

        def section(key: str, kind):
            v = cfg.get(key, {} if key == "self_instruct" else False)
            if v is False or v is None:
                return None
            return kind(**({} if v is True else v))

        try:
            si = section("self_instruct", SelfInstructConfig)
            evol = section("evol_instruct", EvolInstructConfig)
            bt = section("backtranslate", BacktranslateConfig)
        except TypeError as exc:
            raise RecipeError([f"builders.synthetic: {exc}"]) from None
        seed_tasks = cfg.get("seed_tasks")
        if seed_tasks:
            from instructkit.recipe.paths import checked_source_path

            seed_tasks = str(checked_source_path(str(seed_tasks), ctx, "builders.synthetic.seed_tasks"))
        return cls(ctx, self_instruct=si, evol_instruct=evol, seed_tasks=seed_tasks,
                   categories=cfg.get("categories"), params=cfg.get("params"),
                   batch_size=cfg.get("batch_size", 8), name=cfg.get("name"),
                   backtranslate=bt, sources=sources, seed_tasks_phi=cfg.get("seed_tasks_phi"))

    def _cap_to_limit(self, limit: int | None) -> None:
        """``--limit N``: plan at most N records in all, split between the methods."""
        if not limit:
            return
        si_n = self.si.n if self.si else 0
        ev_n = self.evol.n if self.evol else 0
        if self.bt is not None:  # back-translation first: it works on any model
            self.bt.cfg.n = min(self.bt.cfg.n, limit)
            limit -= self.bt.cfg.n
            if limit <= 0:
                if self.si:
                    self.si.n = 0
                if self.evol:
                    self.evol.n = 0
                return
        if si_n + ev_n <= limit:
            return
        si_share = round(limit * si_n / (si_n + ev_n)) if si_n and ev_n else (limit if si_n else 0)
        if self.si:
            self.si.n = min(si_n, max(si_share, 1 if si_n and limit > 1 else si_share))
        if self.evol:
            self.evol.n = min(ev_n, limit - (self.si.n if self.si else 0))

    @property
    def client(self):
        if self._client is None:
            from instructkit.llm import llm_from_context

            self._client = llm_from_context(self.ctx)
        return self._client

    @property
    def run_seed(self) -> int:
        return int(getattr(self.ctx, "seed", 0) or 0)

    # -- the Builder interface ------------------------------------------------------------------
    @property
    def embedder(self):
        from instructkit.embeddings import embedder_from_context

        return embedder_from_context(self.ctx)

    def derive_seed(self, *parts: Any) -> int:
        return _derive_seed(self.run_seed, self.name, *parts)

    def inputs(self) -> Iterable[str]:
        out = []
        if self.bt is not None and self.bt.cfg.n > 0:
            out.append("backtranslate")
        if self.si and self.si.n > 0:
            out.append("self_instruct")
        if self.evol and self.evol.n > 0:
            out.append("evol_instruct")
        return out

    def process(self, methods: Iterable[str]) -> Iterator[Record]:
        for method in methods:
            if self.stopped:
                break
            gen = {"backtranslate": lambda: self.bt.run(), "self_instruct": self._self_instruct,
                   "evol_instruct": self._evol_instruct}[method]()
            yield from gen
        # report "in" as generation attempts (each made a record or a quarantine line), not
        # the two method names the base class saw
        self.stats.n_in = self.stats.n_out + sum(self.stats.dropped.values())

    # -- Self-Instruct --------------------------------------------------------------------------
    def _self_instruct(self) -> Iterator[Record]:
        cfg = self.si
        assert cfg is not None
        novelty = NoveltyFilter(cfg.rouge_threshold)
        novelty.add_many((t.id, t.instruction) for t in self.pool.tasks)
        machine: list[SeedTask] = []
        params = {**self.params, **cfg.params}
        made = attempt = 0
        max_attempts = cfg.max_attempts or 3 * cfg.n
        p_task, p_inst = self.si_prompts["new_task"], self.si_prompts["instance"]
        while made < cfg.n and attempt < max_attempts and not self.stopped:
            size = min(self.batch_size, cfg.n - made, max_attempts - attempt)
            plans = [self._si_plan(attempt + j, cfg, machine) for j in range(size)]
            attempt += size
            self.counts["self_instruct_attempts"] += size
            reqs = [self.source_request(p_task, params, plan.seeds["new_task"],
                                  category_label=self.pool.categories[plan.category],
                                  examples=plan.examples) for plan in plans]
            accepted: list[_Plan] = []
            for plan, res in zip(plans, self._ask(reqs)):
                if not self._usable(plan, res, p_task, "new_task"):
                    continue
                instr = " ".join(str(res.data["instruction"]).split())
                problem = instruction_problem(instr)
                if problem:
                    self._drop(plan, problem, instruction=instr)
                    continue
                score, similar = novelty.most_similar(instr)
                if score >= cfg.rouge_threshold:
                    self._drop(plan, "too_similar", instruction=instr, rouge_l=round(score, 4),
                               similar_to=similar)
                    continue
                novelty.add(plan.record_key, instr)
                plan.instruction = instr
                plan.extra["rouge_l_max"] = round(score, 4)
                plan.prompts.append((p_task.id, p_task.hash))
                accepted.append(plan)
            if not accepted:
                continue
            example_of = {id(p): (p.examples[0] if p.examples else None) for p in accepted}
            reqs = [self.source_request(p_inst, params, plan.seeds["instance"],
                                  instruction=plan.instruction, example=example_of[id(plan)])
                    for plan in accepted]
            for plan, res in zip(accepted, self._ask(reqs)):
                if not self._usable(plan, res, p_inst, "instance"):
                    continue
                out = str(res.data.get("output") or "").strip()
                inp = str(res.data.get("input") or "").strip()
                if not out or out == inp or out.lower() == plan.instruction.lower():
                    self._drop(plan, "empty_output", instruction=plan.instruction, raw=res.raw)
                    continue
                plan.input, plan.output = inp, out
                plan.prompts.append((p_inst.id, p_inst.hash))
                self._note_llm(plan, res)
                machine.append(SeedTask(id=plan.record_key, task=plan.category,
                                        instruction=plan.instruction, input=inp, output=out))
                made += 1
                self.counts["self_instruct_records"] += 1
                yield self._record(plan, self.si_prompts)
        if made < cfg.n and not self.stopped:
            logger.info("self-instruct made %d of %d records in %d attempts", made, cfg.n, attempt)

    def _si_plan(self, index: int, cfg: SelfInstructConfig, machine: list[SeedTask]) -> _Plan:
        rng = random.Random(_derive_seed(self.run_seed, self.name, "self_instruct", index))
        category = self.categories[index % len(self.categories)]
        seeds = self.pool.by_category(category)
        examples = rng.sample(seeds, min(cfg.k, len(seeds)))
        generated = [m for m in machine if m.task == category]
        if generated and cfg.machine_examples:
            examples += rng.sample(generated, min(cfg.machine_examples, len(generated)))
        return _Plan(method="self_instruct", index=index, category=category, examples=examples,
                     seeds={"new_task": rng.randrange(2**31), "instance": rng.randrange(2**31)})

    # -- Evol-Instruct --------------------------------------------------------------------------
    def _evol_instruct(self) -> Iterator[Record]:
        cfg = self.evol
        assert cfg is not None
        params = {**self.params, **cfg.params}
        elim = dict(self.evol_prompts.data.get("elimination") or {})
        order = [t for t in self.pool.tasks if t.task in self.categories]
        random.Random(_derive_seed(self.run_seed, self.name, "evol_order")).shuffle(order)
        ops = self.evol_prompts.data["operations"]
        p_resp = self.evol_prompts["respond"]
        for start in range(0, cfg.n, self.batch_size):
            if self.stopped:
                break
            plans = []
            for i in range(start, min(cfg.n, start + self.batch_size)):
                rng = random.Random(_derive_seed(self.run_seed, self.name, "evol_instruct", i))
                base = order[i % len(order)]
                chosen = [cfg.operations[(i + r) % len(cfg.operations)] for r in range(cfg.rounds)]
                plans.append(_Plan(method="evol_instruct", index=i, category=base.task, base=base,
                                   operations=chosen, instruction=base.instruction, input=base.input,
                                   seeds={f"evolve_{r}": rng.randrange(2**31) for r in range(cfg.rounds)}
                                   | {"respond": rng.randrange(2**31)}))
            self.counts["evol_instruct_attempts"] += len(plans)
            alive = plans
            for r in range(cfg.rounds):
                reqs = []
                for plan in alive:
                    op = plan.operations[r]
                    prompt = self.evol_prompts["breadth" if ops[op]["kind"] == "in_breadth" else "evolve"]
                    reqs.append(self.source_request(prompt, params, plan.seeds[f"evolve_{r}"],
                                              method=ops[op]["method"], instruction=plan.instruction,
                                              input=plan.input))
                survivors = []
                for plan, req, res in zip(alive, reqs, self._ask(reqs)):
                    op = plan.operations[r]
                    prompt = self.evol_prompts["breadth" if ops[op]["kind"] == "in_breadth" else "evolve"]
                    if not self._usable(plan, res, prompt, f"evolve:{op}"):
                        continue
                    new_instr = " ".join(str(res.data["instruction"]).split())
                    new_input = str(res.data.get("input") or "").strip()
                    parent = f"{plan.instruction}\n{plan.input}".strip()
                    child = f"{new_instr}\n{new_input}".strip()
                    verdict = elimination_reason(parent, child, None,
                                                 copied_phrases=elim.get("copied_phrases", []),
                                                 refusal_phrases=elim.get("refusal_phrases", []),
                                                 refusal_max_words=elim.get("refusal_max_words", 80),
                                                 same_threshold=cfg.same_threshold)
                    if verdict is None:
                        verdict = (lambda p: (p, {}) if p else None)(instruction_problem(new_instr))
                    if verdict:
                        self._drop(plan, verdict[0], operation=op, instruction=new_instr, **verdict[1])
                        continue
                    plan.instruction, plan.input = new_instr, new_input
                    plan.prompts.append((prompt.id, prompt.hash))
                    survivors.append(plan)
                alive = survivors
            if not alive:
                continue
            reqs = [self.source_request(p_resp, params, plan.seeds["respond"], instruction=plan.instruction,
                                  input=plan.input) for plan in alive]
            for plan, res in zip(alive, self._ask(reqs)):
                if not self._usable(plan, res, p_resp, "respond"):
                    continue
                out = str(res.data.get("output") or "").strip()
                verdict = elimination_reason(plan.base.instruction, plan.instruction, out,
                                             copied_phrases=elim.get("copied_phrases", []),
                                             refusal_phrases=elim.get("refusal_phrases", []),
                                             refusal_max_words=elim.get("refusal_max_words", 80),
                                             same_threshold=cfg.same_threshold)
                if verdict:
                    self._drop(plan, verdict[0], instruction=plan.instruction, raw=res.raw, **verdict[1])
                    continue
                plan.output = out
                plan.prompts.append((p_resp.id, p_resp.hash))
                plan.extra["evolutions"] = list(plan.operations)
                self._note_llm(plan, res)
                self.counts["evol_instruct_records"] += 1
                yield self._record(plan, self.evol_prompts)

    # -- helpers --------------------------------------------------------------------------------
    def source_request(self, prompt, params: dict, seed: int, **variables):
        """The request for ``prompt`` filled with ``variables`` (seed tasks, source text).
        Every request this builder sends is made here, so whatever must happen to source
        text before a model sees it (anonymization, issue 12) happens in one place. A prompt
        with a ``schema`` asks for JSON; a few-shot prompt for plain text."""
        from instructkit.llm import ChatRequest, JsonRequest

        schema = getattr(prompt, "schema", None)
        if schema is None:
            return ChatRequest(messages=prompt.messages(**variables), params=dict(params), seed=seed,
                               prompt_id=prompt.id, prompt_hash=prompt.hash)
        return JsonRequest(messages=prompt.messages(**variables), schema=schema,
                           params=dict(params), seed=seed, prompt_id=prompt.id,
                           prompt_hash=prompt.hash)

    def ask_chat(self, requests: list) -> list:
        """Plain-text answers in order; after a budget stop, None for what was not answered."""
        if not requests:
            return []
        if self.stopped:
            return [None] * len(requests)
        try:
            return self.client.chat_many(requests)
        except BudgetExceeded as exc:
            self.stopped = str(exc)
            logger.warning("synthetic builder '%s' stops early: %s", self.name, exc)
            got = list(getattr(exc, "results", None) or [])
            return got + [None] * (len(requests) - len(got))

    def _ask(self, requests: list) -> list:
        """Answers in order; after a budget stop, None for what was not answered."""
        if not requests:
            return []
        if self.stopped:
            return [None] * len(requests)
        try:
            return self.client.complete_json_many(requests)
        except BudgetExceeded as exc:
            self.stopped = str(exc)
            logger.warning("synthetic builder '%s' stops early: %s", self.name, exc)
            return list(getattr(exc, "results", None) or [None] * len(requests))

    def _usable(self, plan: _Plan, res, prompt, step: str) -> bool:
        if res is None:
            self._drop(plan, "budget_exceeded", step=step)
            return False
        if res.ok and isinstance(res.data, dict):
            return True
        reason = "invalid_llm_output" if res.raw else "llm_request_failed"
        self._drop(plan, reason, step=step, error=res.error, raw=res.raw, prompt_id=prompt.id)
        return False

    def _drop(self, plan: _Plan, reason: str, **details: Any) -> None:
        self.drop(None, reason, method=plan.method, attempt=plan.record_key, task=plan.category,
                  seed_task_ids=plan.seed_task_ids, **details)

    @staticmethod
    def _note_llm(plan: _Plan, res) -> None:
        plan.model, plan.provider = res.model, res.provider
        plan.params = {k: v for k, v in res.params.items() if k != "seed"}

    def _record(self, plan: _Plan, prompts: PromptSet) -> Record:
        prov: dict[str, Any] = {
            "builder": "synthetic", "builder_name": self.name, "seed": self.run_seed,
            "prompt_id": prompts.id, "prompt_hash": prompts.hash,
            "prompt_chain": [{"prompt_id": i, "prompt_hash": h} for i, h in plan.prompts],
            "model": plan.model, "provider": plan.provider, "params": plan.params,
            "request_seeds": dict(plan.seeds), "seed_task_ids": plan.seed_task_ids,
            "seed_pool_hash": self.pool.hash,
        }
        meta: dict[str, Any] = {"synthetic": {"method": plan.method, "category": plan.category}}
        if "rouge_l_max" in plan.extra:
            meta["synthetic"]["rouge_l_max"] = plan.extra["rouge_l_max"]
        if plan.method == "evol_instruct":
            meta["synthetic"]["evolutions"] = plan.operations
            meta["synthetic"]["base_instruction"] = plan.base.instruction
        return make_record(task=plan.category, method="synthetic", instruction=plan.instruction,
                           input=plan.input, output=plan.output,
                           source=self.pool.source(plan.record_key, location=self.pool.file.rsplit("/", 1)[-1]),
                           provenance=prov, meta=meta)

    # -- reporting ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.counts)
        if self.bt is not None:
            d.update(backtranslate_requested=self.bt.cfg.n, backtranslate_attempts=self.bt.attempts,
                     backtranslate_records=self.bt.made)
        if self.si:
            d["self_instruct_requested"] = self.si.n
        if self.evol:
            d["evol_instruct_requested"] = self.evol.n
        if self.stopped:
            d["stopped_early"] = self.stopped
        if self._client is not None:
            d["llm"] = {"model": self._client.model, "provider": self._client.provider}
        return d

    def card_section(self, stats: Any) -> str | None:
        lines = ["### Synthetic records", "",
                 f"Seed pool: `{self.pool.name}` ({len(self.pool.tasks)} clinician-style tasks written "
                 f"by the project, licence {self.pool.license}, hash `{self.pool.hash}`); categories: "
                 + ", ".join(self.categories) + "."]
        model = f"`{self._client.model}` ({self._client.provider})" if self._client is not None else "the configured model"
        if self.si:
            lines.append(f"- **Self-Instruct** ({self.counts['self_instruct_records']} of {self.si.n} "
                         f"requested, {self.counts['self_instruct_attempts']} attempts): {self.si.k} seed tasks "
                         f"(+{self.si.machine_examples} generated) shown per request; a new instruction is kept only if "
                         f"its ROUGE-L to every task in the pool is below {self.si.rouge_threshold}. "
                         f"Prompts `{self.si_prompts.id}` (hash `{self.si_prompts.hash}`).")
        if self.evol:
            lines.append(f"- **Evol-Instruct** ({self.counts['evol_instruct_records']} of {self.evol.n} "
                         f"requested): operations {', '.join(self.evol.operations)}, {self.evol.rounds} round(s); "
                         f"elimination drops evolutions that add nothing (ROUGE-L to the parent at or above "
                         f"{self.evol.same_threshold}), copy the prompt, fail, or get a refusal. "
                         f"Prompts `{self.evol_prompts.id}` (hash `{self.evol_prompts.hash}`).")
        if self.bt is not None:
            lines.insert(3, self.bt.card_line())
        lines.append(f"- Model: {model}; sampling {self.params}; request seeds derived from the run seed "
                     f"{self.run_seed}.")
        if self.stopped:
            lines.append(f"- Stopped early: {self.stopped}")
        return "\n".join(lines)


def _anonymized_pool(pool: SeedPool, ctx: Any) -> SeedPool:
    """The pool with PHI in every seed task replaced by placeholders (the run's guard)."""
    import dataclasses

    from instructkit.steps.anonymize.guard import phi_guard

    guard = phi_guard(ctx)
    if guard.send_phi:
        return pool
    texts = [x for t in pool.tasks for x in (t.instruction, t.input, t.output)]
    clean = iter(guard.scrub_many(texts))
    tasks = [dataclasses.replace(t, instruction=next(clean), input=next(clean), output=next(clean))
             for t in pool.tasks]
    return dataclasses.replace(pool, tasks=tasks)
