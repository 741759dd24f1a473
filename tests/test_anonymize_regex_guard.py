"""The first-character guard in front of the detector's patterns finds exactly what they find."""

from __future__ import annotations

import random
import re
import sys

from conftest import ROOT

from instructkit.steps.anonymize.canary import canary_text, canary_values
from instructkit.steps.anonymize.detect import expand, load_recognizer_config
from instructkit.steps.anonymize.regex_guard import guarded


def _patterns() -> list[tuple[str, str]]:
    cfg = load_recognizer_config()
    fragments = {k: expand(v, cfg["fragments"]) for k, v in cfg["fragments"].items()}
    return [(p["name"], expand(p["regex"], fragments)) for p in cfg["patterns"]]


def _texts() -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from phi_eval import clinical_notes
    finally:
        sys.path.remove(str(ROOT / "bench"))
    texts = [canary_text(canary_values(seed)) for seed in range(5)]
    texts += [n["text"] for n in clinical_notes(120, seed=3)]
    # letters whose case folds are not ASCII ("ſ" folds to "s", the Kelvin sign to "k"),
    # label words, digits and punctuation, shuffled
    rng = random.Random(5)
    alphabet = list("aAsSkKſKİıéÉ0123456789 \t\n.,:;#/-()'") + ["MRN", "plan", "ID", "Dr.", "seen at",
                                                                 "lives in", "Apt", "PO Box", "DOB"]
    texts += ["".join(rng.choice(alphabet) for _ in range(200)) for _ in range(200)]
    return texts


def test_guarded_patterns_find_what_the_patterns_find():
    texts = _texts()
    patterns = _patterns()
    guarded_count = 0
    for name, regex in patterns:
        plain, fast = re.compile(regex, re.MULTILINE), re.compile(guarded(regex, re.MULTILINE), re.MULTILINE)
        guarded_count += plain.pattern != fast.pattern
        for text in texts:
            assert [m.span() for m in plain.finditer(text)] == [m.span() for m in fast.finditer(text)], name
    assert guarded_count >= len(patterns) // 2  # most patterns start with a word list


def test_guard_is_left_off_where_the_first_character_is_open():
    assert guarded(r"\w+@\w+") == r"\w+@\w+"  # a class: no small set
    assert guarded(r"(?:ab)?") == r"(?:ab)?"  # may match the empty string
    assert guarded(r"(?i:\bMRN)\s*\d+") == r"(?=(?i:[M]))(?i:\bMRN)\s*\d+"
    assert guarded(r"(?:Dr|Mr)\.?\s+[A-Z]") == r"(?=[DM])(?:Dr|Mr)\.?\s+[A-Z]"
    assert guarded(r"x?[0-3]") == r"(?=[0123x])x?[0-3]"
