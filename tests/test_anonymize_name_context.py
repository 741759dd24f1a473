"""Names by their context (name_context.py) and NER places that are given names: found where
a person stands, left alone in public medical text (shapes from MedQuAD and PubMedQA)."""

from __future__ import annotations


def _names(det, text: str) -> set[str]:
    return {text[f.start:f.end] for f in det.detect(text) if f.type in ("NAME", "LOCATION")}


def test_given_name_and_surname_pairs_and_gpes_of_people_are_names(phi_detector):
    text = "The name in the account is not correct, please change it to Sofia Lima"
    assert "Sofia Lima" in _names(phi_detector, text)
    text = "It was a done thing between him and Franciska's kid; and everybody thought so."
    assert "Franciska" in _names(phi_detector, text)


def test_titles_institutions_and_places_are_no_name_pairs(phi_detector):
    for text in ("What is (are) Nutrition for Early Chronic Kidney Disease in Adults ?",
                 "Progressive or Recurrent Childhood Brain Stem Glioma",
                 "Five hospitals in the San Francisco and East Bay areas.",
                 "It was measured by Tonopen (Oculab, La Jolla, CA) in both eyes.",
                 "Dental fitness is lower than in the Royal Navy or the Royal Air Force.",
                 "Patients treated at Roswell Park Cancer Institute (RPCI) from 1971 to 1997.",
                 "Level of Freedom                 Little freedom during treatments."):
        pairs = {text[f.start:f.end] for f in phi_detector.detect(text) if f.type == "NAME"}
        assert not any(" " in n.strip() for n in pairs), (text, pairs)


def test_places_that_are_given_names_stay_places(phi_detector):
    for text in ("GP patients in four London boroughs.", "South east London.",
                 "It correlated with the London handicap scale r = 0.726.",
                 "Paris and surrounding suburbs.", "Central Manchester and Bradford health districts.",
                 "Among 972 Washington state employees and spouses.",
                 "- Sternum (chest bone) or backbone.\n- Carina (where the trachea joins the bronchi)."):
        found = {f.type for f in phi_detector.detect(text)}
        assert "NAME" not in found, text
