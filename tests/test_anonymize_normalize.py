"""Issue 26, item 4: text is normalised before detecting and auditing (``normalize``), and what
is found maps back to the original characters. Each hostile form of the issue goes through
the anonymize stage (the value is gone, the rest kept) and the audit (counted); ordinary
medical text is left as it is; an encoded SSN in a built folder fails publish's gate 1."""

from __future__ import annotations

import base64
import re
import shutil
from collections import Counter

import pytest

from fixtures_anonymize import make_phi_record
from instructkit.steps.anonymize.normalize import TRANSFORMS, decode_base64, normalize, take_stats

B64 = base64.b64encode(b"MRN 12345678 SSN 123-45-6789").decode()

#: (id, text, the PHI value as written, the transform that must fire, the audit type it counts as,
#:  text around it that must stay)
HOSTILE = [
    ("zero_width", "Patient SSN 123-45\u200b-6789 was seen today.", "123-45\u200b-6789", "zero_width", "SSN",
     ["Patient SSN", "was seen today."]),
    ("html_entities", "Her SSN is &#49;&#50;&#51;-&#52;&#53;-&#54;&#55;&#56;&#57; per chart.",
     "&#49;&#50;&#51;-&#52;&#53;-&#54;&#55;&#56;&#57;", "html_entities", "SSN", ["Her SSN is", "per chart."]),
    ("social_cue", "Her social is 123456789 and she works nights.", "123456789", None, "SSN",
     ["Her social is", "and she works nights."]),
    ("spelled_digits", "His SSN is one two three four five six seven eight nine, he said.",
     "one two three four five six seven eight nine", "spelled_digits", "SSN", ["His SSN is", ", he said."]),
    ("base64_run", f"Attached note: {B64} end of note.", B64, "base64_run", "SSN",
     ["Attached note:", "end of note."]),
    ("split_identifier_ssn", "SSN 123-45-\n6789 on file.", "123-45-\n6789", "split_identifier", "SSN",
     ["on file."]),
    ("split_identifier_spaces", "Her number 123 45 6789 is on file.", "123 45 6789", "split_identifier", "SSN",
     ["Her number", "is on file."]),
    ("percent_run", "Link: https://example.invalid/p?ssn%3D123%2D45%2D6789 sent.", "123%2D45%2D6789",
     "percent_run", "SSN", ["Link:", "sent."]),
    ("nfkc", "SSN \uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19 noted.",
     "\uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19", "nfkc", "SSN", ["noted."]),
    ("split_identifier_name", "Patient: Maria\nGonzalez, 45F, presented with chest pain.", "Gonzalez",
     "split_identifier", "NAME", ["presented with chest pain."]),
    ("soft_hyphen", "Mrs. Gon\u00adzalez was seen in clinic.", "Gon\u00adzalez", "soft_hyphen", "NAME",
     ["was seen in clinic."]),
]

NORMAL = [
    "The patient's pH was 7.4 and the café au lait spots were noted on the trunk.",
    "Start an α-blocker; β-agonists and γ-globulin were given; TNF-α was raised.",
    "A treatment-naïve patient received 250 µg of the drug and 10⁹/L platelets; ½ tablet twice daily.",
    "Normal saline 1 L, then one or two tablets of acetaminophen every six hours as needed.",
    "Serum sodium 135 45 mmol/L was reported; hemoglobin 12.5 g/dL.",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a lung disease caused by fine silica dust.",
    "Use 5%dextrose and 0.9%NaCl; 95% CI 1.2-3.4.",
    "See https://www.ncbi.nlm.nih.gov/pmc/articles/PMC1234567/ for the review.",
]


# -- the transforms alone ----------------------------------------------------------------------
@pytest.mark.parametrize("case, text, value, transform, typ, kept", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_each_transform_fires_and_maps_back(case, text, value, transform, typ, kept):
    n = normalize(text, name_pair=lambda g, s: True)
    if transform is None:
        assert not n.changed and n.text == text
        return
    assert n.fired[transform] >= 1, n.fired
    if typ == "SSN":
        m = re.search(r"123-?45-?6789", n.text)
        assert m, n.text
        s, e = n.span(*m.span())
        assert value in text[s:e] or text[s:e] in value, (text[s:e], value)
        assert "123" not in text[:s] + text[e:] or transform == "base64_run"


def test_offset_map_gives_the_exact_original_substring():
    text = "a\u200bb SSN &#49;&#50;&#51;-45-6789 x\u00ady ＡＢ"
    n = normalize(text)
    assert n.text == "ab SSN 123-45-6789 xy AB"
    i = n.text.index("123-45-6789")
    s, e = n.span(i, i + len("123-45-6789"))
    assert text[s:e] == "&#49;&#50;&#51;-45-6789"
    i = n.text.index("ab")
    assert text[slice(*n.span(i, i + 2))] == "a\u200bb"
    i = n.text.index("xy")
    assert text[slice(*n.span(i, i + 2))] == "x\u00ady"
    i = n.text.index("AB")
    assert text[slice(*n.span(i, i + 2))] == "ＡＢ"
    # one character of an entity run maps to its own entity
    i = n.text.index("2")
    assert text[slice(*n.span(i, i + 1))] == "&#50;"
    # spelled digits: each digit comes from its word
    t = "SSN one two three four five six seven eight nine."
    n = normalize(t)
    assert n.text == "SSN 123456789."
    assert t[slice(*n.span(4, 7))] == "one two three"
    assert t[slice(*n.span(4, 13))] == "one two three four five six seven eight nine"


def test_a_decoded_run_maps_to_the_whole_run():
    text = f"x {B64} y"
    n = normalize(text)
    assert "MRN 12345678 SSN 123-45-6789" in n.text
    i = n.text.index("12345678")
    assert text[slice(*n.span(i, i + 8))] == B64
    assert n.encoded_in(i, i + 8) == "base64_run"
    assert decode_base64("Pneumonoultramicroscopicsilicovolcanoconiosis") is None


@pytest.mark.parametrize("text", NORMAL)
def test_ordinary_medical_text_keeps_its_meaning(text):
    n = normalize(text)
    # only the micro sign becomes the Greek mu (the same letter); nothing else changes
    assert n.text == text.replace("\u00b5", "\u03bc"), n.text
    assert set(n.fired) <= {"nfkc"}


def test_every_transform_is_named_with_its_principle():
    for name, fn in TRANSFORMS.items():
        assert fn.__doc__ and f"**{name}**" in fn.__doc__, name


def test_spelled_digits_need_seven_words_or_a_cue():
    assert normalize("Take one or two tablets, three times a day.").text == "Take one or two tablets, three times a day."
    assert normalize("one two three four five six").fired["spelled_digits"] == 0
    assert normalize("MRN four five six seven").text == "MRN 4567"
    assert normalize("one two three - four five - six seven eight nine").text == "123-45-6789"


def test_take_stats_splits_figures_from_suspects():
    c = Counter({"SSN": 2, "normalised:zero_width": 1, "normalised:SSN (encoded)": 1})
    assert take_stats(c) == {"zero_width": 1, "SSN (encoded)": 1}
    assert c == {"SSN": 2}


# -- through the anonymize stage and the audit -------------------------------------------------
@pytest.mark.parametrize("case, text, value, transform, typ, kept", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_anonymize_removes_each_hostile_form(phi_detector, case, text, value, transform, typ, kept):
    from instructkit.steps.anonymize.step import AnonymizeStep

    stage = AnonymizeStep("placeholder", detector=phi_detector, canary=False)
    rec = make_phi_record("Summarize the note.", text, "Noted.")
    out = list(stage([rec]))[0]
    assert value not in out["input"], out["input"]
    for digits in ("123-45-6789", "123456789", "6789"):
        assert digits not in out["input"], out["input"]
    for piece in kept:
        assert piece in out["input"], (piece, out["input"])
    assert f"[{typ}]" in out["input"], out["input"]
    if transform is not None:
        assert stage.summary()["anonymization"]["normalised"].get(transform, 0) >= 1


@pytest.mark.parametrize("case, text, value, transform, typ, kept", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_audit_counts_each_hostile_form(audit_detector, case, text, value, transform, typ, kept):
    from instructkit.steps.audit import AuditReport, audit_records, default_limits

    report = AuditReport(default_limits())
    rec = make_phi_record("Summarize the note.", text, "Noted.")
    list(audit_records([rec], audit_detector, report))
    assert report.suspects[typ] >= 1, report.as_dict()
    d = report.as_dict()
    if typ == "SSN":
        assert not d["passed"] and "SSN" in d["failed_types"]
    if transform is not None and case != "split_identifier_name":  # the audit's NER reads across the line
        assert d["normalised"].get(transform, 0) >= 1, d["normalised"]
    if transform == "base64_run":  # the input, and the user turn made from it
        assert d["normalised"]["SSN (encoded)"] >= 1 and d["normalised"]["RECORD_NUMBER (encoded)"] >= 1
        assert report.suspects["RECORD_NUMBER"] >= 1


def test_ordinary_medical_text_gets_no_finding(phi_detector, audit_detector):
    from instructkit.steps.anonymize.step import AnonymizeStep

    stage = AnonymizeStep("placeholder", detector=phi_detector, canary=False)
    recs = [make_phi_record("Explain.", t, "Noted.", record_id=f"n{i}") for i, t in enumerate(NORMAL)]
    out = list(stage(recs))
    for before, after in zip(recs, out):
        assert after["input"] == before["input"]
        assert after["provenance"]["anonymization"]["replaced"] == {}
    for text in NORMAL:
        counts = audit_detector.scan_many([(text, [])])[0]
        take_stats(counts)
        assert not {t: n for t, n in counts.items() if t in ("SSN", "PHONE", "RECORD_NUMBER", "NAME")}, (text, counts)


# -- through the publish gate -------------------------------------------------------------------
def test_publish_gate_1_fails_a_folder_with_an_encoded_ssn(tmp_path):
    import yaml

    from hostile_gate import _edit_records, recipe, run_cli

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe(), sort_keys=False), encoding="utf-8")
    r = run_cli("build", "r.yaml", "--out", "clean", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    ok = run_cli("publish", "clean", "--dry-run", "--repo-id", "a/b", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name, planted in (("b64", f"Ref {base64.b64encode(b'SSN 219-09-9999').decode()} attached."),
                          ("entities", "SSN &#50;&#49;&#57;-&#48;&#57;-&#57;&#57;&#57;&#57; on file."),
                          ("zero_width", "Patient 219-09\u200b-9999 seen."),
                          ("spelled", "Her social is two one nine zero nine nine nine nine nine.")):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "clean", folder)
        _edit_records(folder, "clinic", planted)
        res = run_cli("publish", name, "--dry-run", "--repo-id", "a/b", cwd=tmp_path)
        out = res.stdout + res.stderr
        assert res.returncode == 1, (name, out)
        assert res.stdout.startswith("dry run: publishing would be REFUSED: gate(s) 1"), (name, out[:400])
        assert re.search(r"parquet: suspected identifiers over the limits \(SSN: 1\)", out), (name, out)
        assert "219-09-9999" not in out and "Traceback" not in out


@pytest.mark.parametrize("operator", ["surrogate", "hash"])
@pytest.mark.parametrize("case, text, value, transform, typ, kept",
                         [c for c in HOSTILE if c[4] == "SSN"], ids=[c[0] for c in HOSTILE if c[4] == "SSN"])
def test_other_operators_never_keep_the_encoded_value(phi_detector, operator, case, text, value, transform, typ,
                                                      kept):
    """A surrogate is written from the plain value: digits written into entities, spelled-out
    words or a base64 run would keep the original's other characters."""
    from instructkit.steps.anonymize.normalize import normalize as norm
    from instructkit.steps.anonymize.step import AnonymizeStep

    stage = AnonymizeStep(operator, detector=phi_detector, seed=3, canary=False)
    out = list(stage([make_phi_record("Summarize the note.", text, "Noted.")]))[0]["input"]
    assert value not in out, out
    plain = norm(out).text
    for digits in ("123-45-6789", "123456789", "6789", "MRN 12345678"):
        assert digits not in plain, (out, plain)
    if operator == "surrogate" and transform in ("html_entities", "spelled_digits", "zero_width"):
        assert re.search(r"\b9\d\d-?\d\d-?\d{4}\b", out), out  # a plain surrogate SSN (area 9xx)
