"""The anonymize stage's faster engine gives what the plain one gives (issue 12: speed-ups
that change no finding). Through the real detector (Presidio + spaCy)."""

from __future__ import annotations

import copy

import pytest

from fixtures_anonymize import make_phi_record

TEXTS = [
    "Patient: John Smith, MRN 00123456, DOB 03/14/1952. Seen at Mercy General Hospital by "
    "Dr. Alvarez. Home: 123 Main Street, Springfield, IL 62704. Phone (617) 555-0143, fax "
    "617.555.0199. SSN 123-45-6789. Email john.smith@gmail.com, IP 192.168.1.20.",
    "Call me on 085 175 7641-Office or tel. +44 20 7946 0958; card 4111 1111 1111 1111, "
    "IBAN GB82 WEST 1234 5698 7654 32, portal https://www.mercy-portal.org/u/881.",
    "History of Parkinson's disease; takes metformin 500 mg. Founders: Eklund, Michael and Hodge.",
    "The cardiac silhouette and mediastinum size are within normal limits. No pneumothorax.",
]
#: texts with no letter: only tokenized, never given to NER or the tagger
LETTERLESS = ["0", "12345", "(617) 555-0143", "03/14/1952", "123-45-6789", "192.168.1.20",
              "+44 20 7946 0958", "4111 1111 1111 1111", "  - 12 / 7 -  ", "93", "2021-05-02"]


def _rows(results):
    return [(r.entity_type, r.start, r.end, round(r.score, 6),
             (r.recognition_metadata or {}).get("recognizer_name")) for r in results]


def test_lean_analyzer_engine_gives_stock_presidio_results(phi_detector):
    """The engine and the context enhancer with less work per text return the results, in
    the order, of Presidio's own classes over the same recognizers and artifacts."""
    pa = pytest.importorskip("presidio_analyzer")
    ours = phi_detector.analyzer
    assert type(ours) is not pa.AnalyzerEngine
    stock = pa.AnalyzerEngine(
        registry=ours.registry, nlp_engine=ours.nlp_engine, supported_languages=["en"],
        context_aware_enhancer=pa.context_aware_enhancers.LemmaContextAwareEnhancer(
            context_suffix_count=2, context_matching_mode="whole_word"))
    arts = dict(ours.nlp_engine.process_batch(TEXTS + LETTERLESS, language="en"))
    for text in TEXTS + LETTERLESS:
        for threshold in (0.0, phi_detector.score_threshold):
            a = ours.analyze(text=text, language="en", nlp_artifacts=arts[text], score_threshold=threshold)
            b = stock.analyze(text=text, language="en", nlp_artifacts=arts[text], score_threshold=threshold)
            assert _rows(a) == _rows(b), text
    assert sorted(ours.get_supported_entities("en")) == sorted(stock.get_supported_entities("en"))


def test_texts_without_letters_find_what_the_full_pipeline_finds(phi_detector):
    engine = phi_detector.nlp_engine
    nlp = engine.nlp["en"]
    found = phi_detector.detect_many(LETTERLESS)
    for text, fnd in zip(LETTERLESS, found):
        full = engine._doc_to_nlp_artifact(nlp(text), "en")  # tok2vec, tagger and NER
        raw = phi_detector.analyzer.analyze(text=text, language="en", nlp_artifacts=full,
                                            score_threshold=phi_detector.score_threshold)
        assert phi_detector._clean(text, raw, full.tokens) == fnd, text
    assert any(found), "the letterless texts hold identifiers"


def test_ner_reads_only_the_sentences_that_may_hold_a_name_and_their_neighbours(phi_detector):
    """NER and the tagger read the sentences with a name or place candidate, one sentence of
    context either side; what they find is set on the whole text's tokens at its offsets."""
    report = "The heart is normal in size. The lungs are clear. No pneumothorax."
    assert phi_detector._ner_pieces(report) == []
    text = ("The heart is normal in size. The lungs are clear. No effusion. Seen today by "
            "Hanna Ukkonen in Tampere. Follow-up in two weeks. The aorta is normal. No fracture.")
    pieces = phi_detector._ner_pieces(text)
    assert [text[o:o + len(p)] for o, p in pieces] == [p for _, p in pieces]
    assert pieces == [(text.index("No effusion"), text[text.index("No effusion"):text.index(" The aorta")])]
    _, art = next(iter(phi_detector.nlp_engine.process_batch([text], language="en")))
    assert len(art.tokens) == len(phi_detector.nlp_engine.nlp["en"].make_doc(text))
    ents = {text[e.start_char:e.end_char]: e.label_ for e in art.entities}
    assert ents.get("Hanna Ukkonen") == "PERSON"
    assert art.tokens.has_annotation("TAG")
    assert {(text[f.start:f.end], f.type) for f in phi_detector.detect(text)} >= {
        ("Hanna Ukkonen", "NAME"), ("Tampere", "LOCATION")}


def test_entities_of_pieces_read_apart_are_all_set_in_text_order(phi_detector, monkeypatch):
    """A piece read without the tagger comes back after the tagged ones; its entities still
    count (they are set on the text in its order)."""
    engine = phi_detector.nlp_engine
    monkeypatch.setattr(engine, "needs_tags", lambda piece: "Yefremova" in piece)
    text = ("Seen by Grant Hill in Mobile today. The heart is normal. The lungs are clear. "
            "No effusion. No fracture. Yefremova visited Tampere.")
    assert len(phi_detector._ner_pieces(text)) == 2
    _, art = next(iter(engine.process_batch([text], language="en")))
    found = [text[e.start_char:e.end_char] for e in art.entities]
    assert "Grant Hill" in found and found.index("Grant Hill") < len(found) - 1


def test_artifacts_hold_every_token_and_its_lower_case(phi_detector):
    engine = phi_detector.nlp_engine
    text, art = next(iter(engine.process_batch(["Call Dr. Smith at 555-0143, please."], language="en")))
    doc = art.tokens
    assert art.tokens_indices == [t.idx for t in doc]
    assert art.lemmas == [t.lower_ for t in doc]
    assert art.keywords == [t.lower_ for t in doc if t.is_alpha]
    assert art.nlp_engine is engine


def test_stage_remembers_findings_of_recent_texts_in_a_bounded_memory(phi_detector):
    from instructkit.steps.anonymize.step import AnonymizeStep

    records = [make_phi_record("Summarize the note of Mr. Jones.", f"Seen {d}/03/2021 by Dr. Alvarez.",
                               "No acute cardiopulmonary abnormality.", record_id=str(d))
               for d in range(1, 9)]
    plain = AnonymizeStep("placeholder", detector=phi_detector, batch_records=2, canary=False)
    plain.CACHE_TEXTS = 0
    small = AnonymizeStep("placeholder", detector=phi_detector, batch_records=2, canary=False)
    small.CACHE_TEXTS = 3
    expected = list(plain(copy.deepcopy(records)))
    assert list(small(copy.deepcopy(records))) == expected
    assert not plain._found
    assert 0 < len(small._found) <= 3
    assert "Mr. Jones" not in expected[0]["instruction"]
    # the remembered texts are PHI: a pickled stage carries none of them
    assert small.__getstate__()["_found"] == {}


def test_record_copy_is_a_deep_copy():
    from instructkit.steps.anonymize.step import _copy_record

    rec = make_phi_record("Summarize.", "Note.", "Summary.", context=["a passage"])
    rec["meta"] = {"options": {"A": "x"}, "n": 1, "f": 0.5, "ok": True, "none": None, "t": (1, 2)}
    new = _copy_record(rec)
    assert new == copy.deepcopy(rec)
    new["meta"]["options"]["A"] = "y"
    new["context"][0]["text"] = "changed"
    assert rec["meta"]["options"]["A"] == "x" and rec["context"][0]["text"] == "a passage"


def test_stock_recognizers_find_nothing_where_their_gate_says_so(phi_detector):
    """A text the gate turns away is one the stock recognizer finds nothing in: hand-made
    edge cases and random strings of digits, punctuation and letters."""
    import random

    pr = pytest.importorskip("presidio_analyzer.predefined_recognizers")
    from instructkit.steps.anonymize.detect import STOCK_NEEDS, load_recognizer_config

    regions = tuple(load_recognizer_config()["phone_regions"])
    stock = {"PhoneRecognizer": pr.PhoneRecognizer(supported_regions=regions),
             "UrlRecognizer": pr.UrlRecognizer(), "IpRecognizer": pr.IpRecognizer(),
             "EmailRecognizer": pr.EmailRecognizer()}
    assert set(stock) == set(STOCK_NEEDS)
    texts = ["call 555-0143 ext 12", "+683 1234", "0800 1111", "tel 617x555x0143", "617\u30fc555\u30fc0143",
             "(617) 555-0143", "+44 20 7946 0958", "LDL 130 mg/dL, K 4.1 mEq/L, 11.2 x10^9/L",
             "example.com", "EXAMPLE.COM", "www.x.org", "a.b", "1.2.3.4", "::1", "fe80::1", "a@b.co",
             "x@y", "Dr. Smith. Then 2.5 mg", "1.5.2021 12:30", "\uff16\uff11\uff17 555 0143"]
    rng = random.Random(5)
    alphabet = "0123456789" * 3 + " -.()/+:@xXabcdeozK\u30fc\u017f\u212a\n"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 30))) for _ in range(3000)]
    for name, rec in stock.items():
        needs = STOCK_NEEDS[name]
        for text in texts:
            if not needs(text):
                assert not rec.analyze(text, rec.supported_entities), (name, text)
        assert any(rec.analyze(t, rec.supported_entities) for t in texts if needs(t)), name
