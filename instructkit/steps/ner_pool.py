"""spaCy NER over batches of texts in other processes, for steps that only need counts.

Two ways to use it:

- ``person_counts``: this process takes one share of each batch and ``processes - 1``
  workers the others (split by length, order kept), and the call returns the counts;
- ``submit``: every share goes to ``processes`` workers and the call returns at once with a
  ``Pending`` whose ``result()`` gives the counts, so the caller goes on with the next batch
  (the audit reads its next records, which runs the stages before it) while the workers run
  NER. A build is then NER on the workers beside everything else on this process.

Every worker loads the model once (or shares it by fork), and only counts travel back. Used
by the audit, whose NER bounds a build's time on one machine.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["NerPool", "Pending", "auto_processes", "person_counts"]

#: below this many characters a batch is not worth sending to other processes
MIN_CHARS = 20_000

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
    model once each. ``processes - 1`` workers serve ``person_counts`` (this process is the
    last), ``processes`` serve ``submit``."""

    def __init__(self, model: str, exclude: tuple[str, ...], *, processes: int) -> None:
        self.model, self.exclude = model, tuple(exclude)
        self.processes = max(1, int(processes))
        self._executor: Any = None
        self._workers = 0

    def _start(self, nlp: Any, workers: int) -> Any:
        if self._executor is not None and self._workers >= workers:
            return self._executor
        self.close()
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        global _WORKER_NLP
        if "fork" in multiprocessing.get_all_start_methods():
            _WORKER_NLP = nlp  # inherited by the forked workers
            ctx, init, args = multiprocessing.get_context("fork"), None, ()
        else:  # pragma: no cover - platforms without fork
            ctx, init, args = multiprocessing.get_context("spawn"), _init_worker, (self.model, self.exclude)
        self._executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init, initargs=args)
        self._workers = workers
        return self._executor

    def person_counts(self, nlp: Any, texts: list[str], batch_size: int) -> list[int]:
        """Counts for ``texts``; ``nlp`` (this process's model) takes the first share."""
        if self.processes == 1 or len(texts) < 2 * self.processes or sum(map(len, texts)) < MIN_CHARS:
            return person_counts(nlp, texts, batch_size)
        executor = self._start(nlp, self.processes - 1)
        mine, *theirs = split_by_chars(texts, self.processes)
        futures = [executor.submit(_worker_person_counts, part, batch_size) for part in theirs]
        counts = person_counts(nlp, mine, batch_size)
        for f in futures:
            counts += f.result()
        return counts

    def submit(self, nlp: Any, texts: list[str], batch_size: int) -> Pending:
        """Counts for ``texts``, computed by the workers while the caller goes on."""
        if self.processes == 1 or not texts:
            return Pending(done=person_counts(nlp, texts, batch_size))
        executor = self._start(nlp, self.processes)
        parts = split_by_chars(texts, self.processes) if len(texts) >= 2 * self.processes else [texts]
        return Pending([executor.submit(_worker_person_counts, part, batch_size) for part in parts if part])

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
            self._workers = 0
