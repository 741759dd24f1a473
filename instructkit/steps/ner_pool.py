"""spaCy NER over batches of texts in other processes, for steps that only need counts.

``submit`` splits a batch by length among ``processes`` workers and returns at once with a
``Pending`` whose ``result()`` gives the counts, so the caller goes on with its next batch
(the audit reads its next records, which runs the stages before it) while the workers run
NER. Every worker loads the model once (or shares it by fork), and only counts travel back.
Used by the audit, whose NER bounds a build's time on one machine.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["NerPool", "Pending", "auto_processes", "person_counts"]

_WORKER_NLP: Any = None


def auto_processes() -> int:
    """NER processes when a recipe does not say: one per CPU, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def person_counts(nlp: Any, texts: list[str], batch_size: int) -> list[int]:
    """PERSON entities (with a letter in them) per text."""
    return [sum(1 for e in doc.ents if e.label_ == "PERSON" and any(ch.isalpha() for ch in e.text))
            for doc in nlp.pipe(texts, batch_size=batch_size)]


def _init_worker(model: str, exclude: tuple[str, ...]) -> None:
    global _WORKER_NLP
    from instructkit.steps.anonymize.detect import _load_spacy

    _WORKER_NLP = _load_spacy(model, exclude)


def _worker_person_counts(texts: list[str], batch_size: int) -> list[int]:
    return person_counts(_WORKER_NLP, texts, batch_size)


def split_by_chars(texts: list[str], parts: int) -> list[list[str]]:
    """``texts`` cut into ``parts`` runs of about equal length in characters (order kept)."""
    total = sum(len(t) for t in texts) or 1
    out: list[list[str]] = [[] for _ in range(parts)]
    done = 0
    for t in texts:
        out[min(parts - 1, done * parts // total)].append(t)
        done += len(t)
    return out


class Pending:
    """Counts being computed: ``result()`` waits for them (in the order submitted)."""

    def __init__(self, futures: list[Any] | None = None, done: list[int] | None = None) -> None:
        self._futures = futures or []
        self._done = done

    def result(self) -> list[int]:
        if self._done is None:
            self._done = [n for f in self._futures for n in f.result()]
            self._futures = []
        return self._done


class NerPool:
    """NER workers, started on first use. They are forked where the platform can (as spaCy's
    own ``nlp.pipe(n_process=...)`` does): a fork shares the loaded model and never re-runs
    the caller's script; the children run only spaCy. Elsewhere they are spawned and load the
    model once each."""

    def __init__(self, model: str, exclude: tuple[str, ...], *, processes: int) -> None:
        self.model, self.exclude = model, tuple(exclude)
        self.processes = max(1, int(processes))
        self._executor: Any = None

    def _start(self, nlp: Any) -> Any:
        if self._executor is not None:
            return self._executor
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        global _WORKER_NLP
        if "fork" in multiprocessing.get_all_start_methods():
            _WORKER_NLP = nlp  # inherited by the forked workers
            ctx, init, args = multiprocessing.get_context("fork"), None, ()
        else:  # pragma: no cover - platforms without fork
            ctx, init, args = multiprocessing.get_context("spawn"), _init_worker, (self.model, self.exclude)
        self._executor = ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=init, initargs=args)
        return self._executor

    def submit(self, nlp: Any, texts: list[str], batch_size: int) -> Pending:
        """Counts for ``texts``, computed by the workers while the caller goes on."""
        if self.processes == 1 or not texts:
            return Pending(done=person_counts(nlp, texts, batch_size))
        executor = self._start(nlp)
        parts = split_by_chars(texts, self.processes) if len(texts) >= 2 * self.processes else [texts]
        return Pending([executor.submit(_worker_person_counts, part, batch_size) for part in parts if part])

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
