"""The card's HIPAA Safe Harbor table (issue 26, item 8): 18 rows, every type the detector or
the audit can emit maps to a kind, and the recall figures are the shipped measured ones.
Also the bench-only NLTK tagger conversion that the philter-lite anchor needs (item 9)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import yaml

from instructkit.dataset import safe_harbor as sh
from instructkit.dataset.card import build_card

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "instructkit"


def _kinds() -> list[str]:
    return [k["id"] for k in sh.load_safe_harbor()["kinds"]]


def test_eighteen_kinds_in_the_rules_order():
    rows = sh.safe_harbor_rows()
    assert len(rows) == sh.SAFE_HARBOR_KINDS == 18
    assert [r["kind"] for r in rows] == _kinds() and len(set(_kinds())) == 18
    assert rows[0]["kind"] == "names" and rows[-1]["kind"] == "other_unique"
    uncovered = {r["kind"]: r["not_covered"] for r in rows if not r["covered"]}
    assert set(uncovered) == {"biometric", "photo"}
    assert all("text-only" in why for why in uncovered.values())
    fax = next(r for r in rows if r["kind"] == "fax")
    assert "PHONE" in fax["types"] and fax["types"]["PHONE"]


def test_every_detector_type_maps_to_a_kind():
    from instructkit.steps.anonymize.detect import PHI_TYPES, load_recognizer_config

    data = sh.load_safe_harbor()
    kinds = set(_kinds())
    mapped = data["detector_types"]
    assert set(mapped) == set(PHI_TYPES)
    assert all(ks and set(ks) <= kinds for ks in mapped.values())
    # every type a recognizer of the config (or one written in code) emits is a PHI type
    cfg = load_recognizer_config()
    emitted = {p["type"] for p in cfg["patterns"]} | set(cfg["presidio"].values())
    emitted |= set(cfg["entity_types"].values())
    emitted |= {t for ts in data["code_recognizers"].values() for t in ts}
    assert emitted <= set(mapped), emitted - set(mapped)
    assert set(sh.recognizers_by_type()) <= set(mapped)
    # gold types of the bench that are no detector type
    assert set(data["gold_types"].values()) <= kinds


def test_code_recognizers_are_named_in_the_package():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (PACKAGE / "steps" / "anonymize").glob("*.py"))
    for name in sh.load_safe_harbor()["code_recognizers"]:
        assert name in source, name


def test_every_audit_type_maps_to_a_kind():
    audit = yaml.safe_load((PACKAGE / "steps" / "audit_patterns.yaml").read_text(encoding="utf-8"))
    mapped = sh.load_safe_harbor()["audit_types"]
    assert set(audit["types"]) == set(mapped)
    assert all(set(ks) <= set(_kinds()) for ks in mapped.values())


def test_recall_figures_come_from_the_shipped_file():
    shipped = json.loads((PACKAGE / "steps" / "anonymize" / "measured_recall.json").read_text(encoding="utf-8"))
    held = shipped["halves"]["held-out"]
    assert held["sets"] and shipped["halves"]["tune"]["sets"]
    assert set(held["kinds"]) <= set(_kinds())
    assert {"names", "geographic", "dates", "ssn", "email"} <= set(held["kinds"])
    text = sh.safe_harbor_section({"stages": [{"stage": "anonymize"}]})
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert len(rows) == 18
    for line, kind in zip(rows, _kinds()):
        cell = line.rstrip(" |").rsplit("| ", 1)[-1]
        rec, tune = held["kinds"].get(kind), shipped["halves"]["tune"]["kinds"].get(kind)
        want = (f"{rec['recall']:.1%} of {rec['gold']}" if rec else
                f"none held out (tune half: {tune['recall']:.1%} of {tune['gold']})" if tune else "not measured")
        assert cell == want, (kind, cell)
    assert shipped["measured"] in text and held["sets"][0] in text


def test_the_table_follows_the_file_it_is_given():
    recall = {"measured": "2001-02-03", "revision": "abc1234",
              "halves": {"held-out": {"sets": ["set A"], "kinds": {"names": {"gold": 10, "recall": 0.5}}}}}
    text = sh.safe_harbor_section({"stages": [{"stage": "anonymize"}]}, recall=recall)
    assert "| 1 | Names | yes |" in text and "| 50.0% of 10 |" in text
    assert "2001-02-03" in text and "set A" in text
    assert text.count("not measured") >= 17
    assert "Recall: not measured" in sh.safe_harbor_section({"stages": [{"stage": "anonymize"}]}, recall={})


def test_card_shows_the_table_only_when_anonymize_ran():
    ran = {"stages": [{"stage": "anonymize", "in": 1, "out": 1, "dropped": 0}], "counts": {"records": 1}}
    assert "### HIPAA Safe Harbor identifiers" in str(build_card(ran))
    off = {"stages": [{"stage": "dedup", "in": 1, "out": 1, "dropped": 0}], "counts": {"records": 1}}
    assert "Safe Harbor identifiers" not in str(build_card(off))
    assert sh.safe_harbor_section(off) == ""


# -- bench/nltk_tagger.py: the philter-lite anchor's tagger data ---------------------------------
@pytest.fixture()
def nltk_tagger():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import nltk_tagger
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return nltk_tagger


def _stub_model() -> tuple[dict, dict, set]:
    weights = {"bias": {"NN": 1.0, "DT": -0.5}, "i word the": {"DT": 5.0},
               "i suffix ent": {"NN": 2.0}, "i-1 tag DT": {"NN": 1.5}}
    return weights, {"the": "DT", "a": "DT"}, {"NN", "DT"}


def test_tagger_pickle_converts_to_the_json_nltk_reads(tmp_path, nltk_tagger, monkeypatch):
    import zipfile

    pkl = pickle.dumps(_stub_model(), protocol=2)
    zpath = tmp_path / "averaged_perceptron_tagger.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("averaged_perceptron_tagger/averaged_perceptron_tagger.pickle", pkl)
    out = nltk_tagger.convert(zpath, tmp_path / "nltk_data")
    assert out == tmp_path / "nltk_data" / "taggers" / "averaged_perceptron_tagger_eng"
    weights, tagdict, classes = (json.loads((out / f).read_text()) for f in nltk_tagger.FILES)
    assert weights == _stub_model()[0] and tagdict == {"the": "DT", "a": "DT"} and classes == ["DT", "NN"]
    assert nltk_tagger.installed([str(tmp_path / "nltk_data")]) == out
    assert nltk_tagger.installed([str(tmp_path)]) is None
    # a bare pickle converts the same
    (tmp_path / "m.pickle").write_bytes(pkl)
    assert nltk_tagger.read_model(tmp_path / "m.pickle")[2] == ["DT", "NN"]
    perceptron = pytest.importorskip("nltk.tag.perceptron")
    import nltk.data

    # nltk reads a model only from its search path ($NLTK_DATA and its defaults)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")] + list(nltk.data.path))
    tagger = perceptron.PerceptronTagger(lang="eng")
    assert tagger.classes == {"NN", "DT"}
    assert tagger.tag(["the", "patient"]) == [("the", "DT"), ("patient", "NN")]


def test_tagger_pickle_may_not_name_a_function(tmp_path, nltk_tagger):
    class Evil:
        def __reduce__(self):
            import os

            return (os.getcwd, ())

    (tmp_path / "evil.pickle").write_bytes(pickle.dumps(({}, {}, Evil()), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        nltk_tagger.read_model(tmp_path / "evil.pickle")


def test_philter_spans_are_what_its_asterisk_writer_hides():
    pytest.importorskip("philter_lite")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from phi_anchors import philter_spans
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from philter_lite import CoordinateMap, transform_text_asterisk

    text = "Seen by Smith on 3/4/2021, fine."
    keep = CoordinateMap()
    for word in ("Seen", "by", "on", "fine"):
        i = text.index(word)
        keep.add_extend(i, i + len(word))
    spans = philter_spans(text, keep)
    assert [text[s:e] for s, e in spans] == ["Smith", "3/4/2021"]
    assert transform_text_asterisk(text, keep) == "Seen by ***** on */*/****, fine."
