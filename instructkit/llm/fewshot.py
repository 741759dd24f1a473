"""Few-shot chat prompts for short generation tasks, and the checks on what comes back.

A small model (the embedded SmolLM2-135M) cannot follow "write the question this text
answers" zero-shot: measured here, it answered "What is the answer?" 5 times of 5. With
two worked examples given as earlier chat turns it wrote a usable question 3 times of 5
in 0.1-0.4 s. So the builders ask small models for one short thing at a time, show worked
examples as chat turns, and check every answer (``clean_question``, ``clean_line``).

A prompt file (``prompts/<id>.yaml``) holds named prompts::

    id: synthetic/backtranslate
    version: 1
    prompts:
      instruction:
        system: You write the question that a text answers.
        user: "Text: {{ text }}"                 # Jinja2; examples are rendered with it too
        examples:                                # worked examples, as earlier chat turns
          - {text: "...", reply: "What ...?"}
        params: {temperature: 0.3, max_tokens: 48}

Every prompt's id and hash go into the records' provenance.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import TemplateError
from instructkit._resources import load_prompt_yaml
from instructkit.records import content_hash

__all__ = ["FewShotPrompt", "FewShotSet", "load_fewshot", "clean_question", "clean_line",
           "shares_content_words"]


@functools.cache
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                                lstrip_blocks=True)


def _render(template: str, variables: dict[str, Any], where: str) -> str:
    from jinja2 import TemplateError as JinjaError

    try:
        return _env().from_string(template).render(**variables).strip()
    except JinjaError as exc:
        raise TemplateError(f"prompt {where}: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class FewShotPrompt:
    id: str
    system: str
    user: str
    examples: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return content_hash({"system": self.system, "user": self.user,
                             "examples": list(self.examples), "params": self.params}, length=16)

    def messages(self, rotate: int = 0, **variables: Any) -> list[dict[str, str]]:
        """System text, each worked example as a user/assistant turn pair, then the task.

        ``rotate`` (e.g. the request seed) starts the examples at another one: a small model
        copies the shape of the example it saw last, so the last one varies between requests."""
        msgs = [{"role": "system", "content": self.system.strip()}] if self.system.strip() else []
        k = rotate % len(self.examples) if self.examples else 0
        for ex in self.examples[k:] + self.examples[:k]:
            turn = {k: v for k, v in ex.items() if k != "reply"}
            msgs.append({"role": "user", "content": _render(self.user, turn, self.id)})
            msgs.append({"role": "assistant", "content": str(ex["reply"]).strip()})
        msgs.append({"role": "user", "content": _render(self.user, variables, self.id)})
        return msgs


@dataclass
class FewShotSet:
    id: str
    file: str
    prompts: dict[str, FewShotPrompt]
    data: dict[str, Any]

    @property
    def hash(self) -> str:
        return content_hash({k: p.hash for k, p in sorted(self.prompts.items())}, length=16)

    def __getitem__(self, key: str) -> FewShotPrompt:
        try:
            return self.prompts[key]
        except KeyError:
            raise TemplateError(f"{self.file}: no prompt '{key}' (has {', '.join(self.prompts)})") from None


@functools.cache
def load_fewshot(name: str | Path) -> FewShotSet:
    """Load ``prompts/<name>.yaml`` (e.g. ``rag/extractive``) or a YAML file path."""
    path, data = load_prompt_yaml(name, "prompt")
    data = data or {}
    prompts: dict[str, FewShotPrompt] = {}
    for key, p in (data.get("prompts") or {}).items():
        if not isinstance(p, dict) or "user" not in p:
            raise TemplateError(f"{path}: prompt '{key}' needs a 'user' template")
        examples = tuple(dict(e) for e in p.get("examples") or [])
        if any("reply" not in e for e in examples):
            raise TemplateError(f"{path}: prompt '{key}': every example needs a 'reply'")
        prompts[key] = FewShotPrompt(id=f"{data.get('id', path.stem)}/{key}", system=p.get("system", ""),
                                     user=p["user"], examples=examples, params=dict(p.get("params") or {}))
        for ex in examples:  # fail on a template/example mismatch when loading, not mid-run
            prompts[key].messages(**{k: v for k, v in ex.items() if k != "reply"})
    if not prompts:
        raise TemplateError(f"{path}: no prompts")
    return FewShotSet(id=data.get("id", path.stem), file=str(path), prompts=prompts, data=data)


# -- checking what came back ----------------------------------------------------------------
_LEAD = re.compile(r"^\s*(?:[-*•>#]+\s*|\d+[.)]\s*|(?:question|q|instruction|request|topic|case|"
                   r"answer|output|reply|response)\s*\d*\s*[:.\-]\s*)+", re.IGNORECASE)
_QUOTES = "\"'“”‘’`"
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_STOP = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been
being it its this that these those what which who whom how why when where do does did can could
should would will may might must shall not no yes so than then there their they them he she his her
we our you your i me my about into over under more most less any all each some such other""".split())


def clean_line(text: str, *, min_words: int = 2, max_words: int = 60) -> str | None:
    """The first non-empty line of a reply, without list markers, labels and quotes."""
    for line in (text or "").splitlines():
        line = _LEAD.sub("", line).strip().strip(_QUOTES).strip()
        if line:
            n = len(line.split())
            return line if min_words <= n <= max_words else None
    return None


def clean_question(text: str, *, min_words: int = 4, max_words: int = 40) -> str | None:
    """One question from a reply: the first line, cut after its first question mark.
    None when there is no question (no '?', too short or too long)."""
    line = clean_line(text, min_words=1, max_words=10_000)
    if not line or "?" not in line:
        return None
    q = line[: line.index("?") + 1].strip().strip(_QUOTES).strip()
    n = len(q.split())
    if not min_words <= n <= max_words or not q[0].isalpha():
        return None
    return q[0].upper() + q[1:]


def content_words(text: str) -> set[str]:
    """Content words, lightly stemmed ("reducing" and "reduce" meet)."""
    return {_stem(w) for w in _WORD.findall((text or "").lower()) if w not in _STOP and len(w) > 2}


def _stem(word: str) -> str:
    for suf in ("ations", "ation", "ings", "ing", "ies", "es", "ed", "ly", "s", "e"):
        if word.endswith(suf) and len(word) - len(suf) >= 4:
            return word[: -len(suf)]
    return word


def shares_content_words(generated: str, source: str, minimum: int = 1) -> bool:
    """Whether ``generated`` names at least ``minimum`` content words of ``source`` (a
    question about a text names something in it; "What is the answer?" names nothing)."""
    return len(content_words(generated) & content_words(source)) >= minimum
