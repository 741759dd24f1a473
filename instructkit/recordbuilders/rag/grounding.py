"""The citation check: is an answer grounded in the passages it cites?

Two conditions, both required:

1. the answer cites at least one passage, and every cited id is among the passages that
   were retrieved for it (a model cannot cite what it was not shown);
2. every sentence of the answer is supported by one of the cited passages: its support
   score, the best over the cited passages (and over each passage's sentences), is at or
   above the threshold. The scores are an embedding cosine (sentence vs passage sentence,
   shared embedder) and a lexical one (share of the sentence's content words found in the
   passage); ``method`` says which decide(s): ``both`` by default, since embedding
   similarity alone lets fluent invented attributions through and word overlap alone
   lets reordered nonsense through.

The scores for every sentence are returned so that they can be reported per record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CitationChecker", "GroundingResult", "split_sentences", "lexical_support",
           "SUPPORT_METHODS"]

SUPPORT_METHODS = ("embedding", "lexical", "either", "both")

_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
# short function words carry no claim; everything else must be found in the passage
_STOP = frozenset("""a an the and or but if then than that this these those there their they them
it its is are was were be been being of in on at to for from by with as into about over under
per via not no nor so such can could may might should would will shall must do does did done
have has had having he she his her we our you your i me my who whom which what when where why
how also any all each other more most less least very only both either neither same own
some many much few one""".split())


@dataclass
class GroundingResult:
    ok: bool
    #: why not, when not: no_citation | cited_not_retrieved | unsupported_sentence | empty_answer
    problem: str | None = None
    cited: list[str] = field(default_factory=list)
    not_retrieved: list[str] = field(default_factory=list)
    sentences: list[dict[str, Any]] = field(default_factory=list)

    def as_meta(self, method: str, thresholds: Mapping[str, float]) -> dict[str, Any]:
        """What a record reports: the rule, the verdict and both scores of every sentence."""
        emb = [s["embedding"] for s in self.sentences if s["embedding"] is not None]
        return {"method": method, "thresholds": dict(thresholds), "ok": self.ok,
                "problem": self.problem, "min_embedding": min(emb) if emb else None,
                "min_lexical": min((s["lexical"] for s in self.sentences), default=None),
                "unsupported": [s["index"] for s in self.sentences if not s["supported"]],
                "sentences": self.sentences}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer; list markers are dropped and fragments under 3 words are
    joined to the sentence before them (``e.g.``, ``Yes.``)."""
    parts = [p.strip(" \t-*•") for p in _SENT_SPLIT.split(text.strip())]
    out: list[str] = []
    for p in parts:
        if not p:
            continue
        if out and len(p.split()) < 3:
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return out


def _content_tokens(text: str) -> list[str]:
    return [_norm(t) for t in _TOKEN.findall(text.lower()) if t not in _STOP and (len(t) > 2 or t.isdigit())]


def _norm(tok: str) -> str:
    # light stemming so that "vaccines"/"vaccine", "recommended"/"recommends" meet
    for suf in ("ations", "ation", "ings", "ing", "ies", "es", "ed", "s"):
        if tok.endswith(suf) and len(tok) - len(suf) >= 4:
            return tok[: -len(suf)]
    return tok


def lexical_support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words (lightly stemmed) that occur in the passage."""
    toks = _content_tokens(sentence)
    if not toks:
        return 1.0
    have = set(_content_tokens(passage))
    return sum(t in have for t in toks) / len(toks)


class CitationChecker:
    """Checks answers against the passages they cite (see the module docstring)."""

    def __init__(self, embedder: Any = None, *, method: str = "both",
                 embedding_threshold: float = 0.65, lexical_threshold: float = 0.5) -> None:
        if method not in SUPPORT_METHODS:
            raise ValueError(f"support method must be one of {', '.join(SUPPORT_METHODS)}")
        if method != "lexical" and embedder is None:
            raise ValueError(f"support method '{method}' needs an embedder")
        self.embedder = embedder
        self.method = method
        self.thresholds = {"embedding": embedding_threshold, "lexical": lexical_threshold}

    def check(self, answer: str, cited: Sequence[str], retrieved: Mapping[str, str]) -> GroundingResult:
        """``retrieved`` maps the ids of the passages shown to the model to their text."""
        cited = list(dict.fromkeys(str(c) for c in cited))
        if not cited:
            return GroundingResult(False, "no_citation")
        missing = [c for c in cited if c not in retrieved]
        if missing:
            return GroundingResult(False, "cited_not_retrieved", cited, missing)
        sentences = split_sentences(answer)
        if not sentences:
            return GroundingResult(False, "empty_answer", cited)
        rows = self._scores(sentences, [(c, retrieved[c]) for c in cited])
        ok = all(r["supported"] for r in rows)
        return GroundingResult(ok, None if ok else "unsupported_sentence", cited, [], rows)

    def _scores(self, sentences: list[str], passages: list[tuple[str, str]]) -> list[dict[str, Any]]:
        lex = [[lexical_support(s, text) for _, text in passages] for s in sentences]
        emb = None
        if self.method != "lexical":
            np = __import__("numpy")
            # each passage is compared as a whole and sentence by sentence: a claim usually
            # restates one sentence, and a long passage dilutes its whole-passage vector
            units, owner = [], []
            for j, (_, text) in enumerate(passages):
                for u in [text, *split_sentences(text)]:
                    units.append(u)
                    owner.append(j)
            vecs = self.embedder.embed(sentences + units)
            sims = vecs[: len(sentences)] @ vecs[len(sentences):].T
            owner_arr = np.asarray(owner)
            emb = [[float(sims[i, owner_arr == j].max()) for j in range(len(passages))]
                   for i in range(len(sentences))]
        rows = []
        for i in range(len(sentences)):
            # the passage that supports the sentence best: passing first, then by the margin
            # of the weaker (both) / stronger (either) score over its threshold
            best = max(range(len(passages)), key=lambda j: self._rank(emb[i][j] if emb else None, lex[i][j]))
            e = emb[i][best] if emb else None
            rows.append({"index": i, "chunk_id": passages[best][0], "embedding": _r(e),
                         "lexical": _r(lex[i][best]), "supported": self._supported(e, lex[i][best])})
        return rows

    def _rank(self, e: float | None, lx: float) -> tuple[bool, float]:
        margins = {"embedding": (e or 0.0) - self.thresholds["embedding"],
                   "lexical": lx - self.thresholds["lexical"]}
        if self.method in margins:
            m = margins[self.method]
        else:
            m = min(margins.values()) if self.method == "both" else max(margins.values())
        return self._supported(e, lx), m

    def _supported(self, e: float | None, lx: float) -> bool:
        ok_e = e is not None and e >= self.thresholds["embedding"]
        ok_l = lx >= self.thresholds["lexical"]
        return {"embedding": ok_e, "lexical": ok_l, "either": ok_e or ok_l,
                "both": ok_e and ok_l}[self.method]
