"""Anonymize before generation: no raw PHI in a language-model request.

Rows of sources that may hold PHI (``phi: true``, the default) are replaced with placeholders
before they go into any request (synthetic seed tasks, RAG documents, judge inputs), so
neither the endpoint nor the response cache ever sees raw PHI from them. A recipe may send
raw text with ``llm.send_phi: true``; the manifest and the card then say so.

One guard per run (``phi_guard(ctx)``); it uses the anonymize stage's detector, built from
the recipe's ``stages.anonymize`` settings (``detectors.detector_for``: its deny terms,
entities and threshold decide what a model is sent, as they decide the records), and counts
what it replaced for the manifest (``llm_phi``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["PhiGuard", "phi_guard"]


class PhiGuard:
    def __init__(self, send_phi: bool = False, detector: Any = None, ctx: Any = None,
                 settings: Any = None) -> None:
        self.send_phi = bool(send_phi)
        self._detector = detector
        self._ctx = ctx
        #: the anonymize settings (``DetectorSettings``) of the detector made on first use
        self.settings = settings
        self._lock = threading.Lock()
        self.texts = 0
        self.replaced: Counter[str] = Counter()

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from instructkit.steps.anonymize.detectors import detector_for

            self._detector = detector_for(self.settings, self._ctx)
        return self._detector

    def scrub(self, text: str, *, phi: bool = True) -> str:
        return self.scrub_many([text], phi=phi)[0]

    def scrub_many(self, texts: Sequence[str], *, phi: bool = True) -> list[str]:
        """``texts`` with PHI replaced by ``[TYPE]`` placeholders (unchanged when the source is
        declared PHI-free, or the recipe sends PHI on purpose)."""
        texts = list(texts)
        if self.send_phi or not phi or not texts:
            return texts
        from instructkit.steps.anonymize.operators import apply_findings

        # a whole document is read in paragraphs (spaCy refuses texts over its max_length)
        pieces: list[str] = []
        owners: list[int] = []
        for i, text in enumerate(texts):
            for part in _paragraphs(text):
                pieces.append(part)
                owners.append(i)
        done: list[list[str]] = [[] for _ in texts]
        for i, piece, found in zip(owners, pieces, self.detector.detect_many(pieces)):
            new, repl = apply_findings(piece, found, lambda _o, f: f"[{f.type}]")
            done[i].append(new)
            with self._lock:
                self.replaced.update(t for _, _, t in repl)
        with self._lock:
            self.texts += len(texts)
        self._note()
        return ["".join(parts) for parts in done]

    def _note(self) -> None:
        if self._ctx is not None:
            self._ctx.manifest_notes["llm_phi"] = self.summary()

    def summary(self) -> dict[str, Any]:
        return {"send_phi": self.send_phi, "texts_anonymized_before_requests": self.texts,
                "replaced": dict(sorted(self.replaced.items()))}


#: longest piece of text given to the detector at once
PIECE_CHARS = 50_000


def _paragraphs(text: str) -> list[str]:
    """``text`` cut at paragraph ends into pieces of at most ``PIECE_CHARS`` characters
    (joined, they give the text back exactly)."""
    if len(text) <= PIECE_CHARS:
        return [text]
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + PIECE_CHARS)
        if end < len(text):
            cut = text.rfind("\n\n", start, end)
            cut = cut + 2 if cut > start else (text.rfind("\n", start, end) + 1 or end)
            end = cut if cut > start else end
        out.append(text[start:end])
        start = end
    return out


def phi_guard(ctx: Any) -> PhiGuard:
    """The run's guard (from the recipe's ``llm.send_phi`` and ``stages.anonymize``)."""
    from instructkit.steps.anonymize.detectors import recipe_detector_settings

    def make() -> PhiGuard:
        recipe = getattr(ctx, "recipe", None) or {}
        send = bool((recipe.get("llm") or {}).get("send_phi", False))
        guard = PhiGuard(send_phi=send, ctx=ctx, settings=recipe_detector_settings(recipe))
        guard._note()
        return guard

    return ctx.shared("anonymize.phi_guard", make, close=lambda _g: None)
