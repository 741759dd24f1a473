"""Public health pages' references, credits, publication dates, organisations' listings,
agency dates, brands and terms are no PHI (issue 12); the same shapes in a patient's text
still are."""

from __future__ import annotations

import pytest

from instructkit.steps.anonymize.public_lines import PublicLines, population_date


def _found(detector, text):
    return {text[f.start:f.end]: f.type for f in detector.detect(text)}


@pytest.mark.parametrize("line, kind", [
    ("2Smith JA, Doe RB. Thyroid disease. eMedicine website. Updated 2010. Accessed May 3, 2012.", "reference"),
    ("Jones AB, Lee CD, et al. Kidney stones in adults. J Urol. 2011;5:12-19.", "reference"),
    ("The NIDDK would like to thank: Ann B. Carter, M.D., Ridge University; Tom Hale, Ph.D.", "credit"),
    ("Help Group 12 Elm Road Dover, DE 19901 Phone: 1-800-555-0100 Fax: 302-555-0101 Internet: www.help.org",
     "listing"),
])
def test_public_lines_are_told_by_their_shape(line, kind):
    spans = PublicLines().spans("Some answer text.\n" + line)
    assert len(spans) == 1 and spans[0][0] == len("Some answer text.\n"), spans
    assert PublicLines._kind(line, "") == kind


@pytest.mark.parametrize("line", [
    "Thank you for seeing Mr. Hale, M.D. referred him for chest pain.",
    "Patient: Ann Carter, 12 Elm Road Dover, DE 19901 Phone: 302-555-0100 Internet: www.help.org",
    "My doctor, Tom Hale, M.D., reviewed by phone on May 3, 2012.",
    "Smith JA was admitted on May 3, 2012.",
])
def test_a_patients_line_is_no_public_line(line):
    assert PublicLines._kind(line, "") is None


def test_a_date_line_is_a_publication_date_only_after_a_rights_statement():
    text = "This information is not copyrighted. Share this content freely.\nFebruary 2014"
    assert PublicLines().spans(text)[-1][2] == frozenset({"DATE", "ZIP"})
    assert not PublicLines().spans("Seen in clinic today.\nFebruary 2014")


@pytest.mark.parametrize("text, date, public", [
    ("As of November 2012, 227 cases were confirmed worldwide.", "November 2012", True),
    ("You may be at risk if you had a transfusion before July 1992.", "July 1992", True),
    ("On August 2, 2013, the U.S. Food and Drug Administration (FDA) published a rule.", "August 2, 2013", True),
    ("On August 2, 2013, the patient was seen.", "August 2, 2013", False),
    ("Seen in November 2012 for a rash.", "November 2012", False),
])
def test_population_dates(text, date, public):
    start = text.index(date)
    assert population_date(text, start, start + len(date)) is public


def test_publication_parts_keep_their_words_but_a_patient_keeps_hers(phi_detector):
    page = ("Kidney stones are common.\n"
            "1Yeung SJ, Habra MA, Chiu AC. Graves disease. emedicine website. "
            "emedicine.medscape.com/article/120619-overview. Updated 2010. Accessed December 10, 2011.\n"
            "As of November 2012, 227 cases were confirmed worldwide.\n"
            "The NIDDK would like to thank: Michael L. Parchman, M.D., M.P.H., Group Health Research "
            "Institute; Marion J. Franz, M.S., R.D., Minneapolis, Minnesota\n"
            "This information is not copyrighted. The NIDDK encourages people to share this content freely.\n"
            "February 2014")
    assert _found(phi_detector, page) == {}
    note = ("I had a blood transfusion before July 1992. Call me at 555-232-1234, 12 Main Street, "
            "Springfield, IL 62704. Thank you Dr. John Smith, M.D.")
    found = _found(phi_detector, note)
    assert {"July 1992", "555-232-1234", "12 Main Street", "62704", "John Smith"} <= set(found), found


@pytest.mark.parametrize("text", [
    "- Pramlintide (Symlin), which is used along with insulin - Exenatide (Byetta), which can help.",
    "A few antihistamines (Benadryl, Atarax, Vistaril) have been found to help.",
    "A medication, pentosan polysulfate sodium, sold as Elmiron, may help. You need an order for Elmiron.",
    "Take a phosphate binder like Renagel, PhosLo, Tums, or calcium carbonate. Drink 1/2 cup of milk.",
    "Bacteria called Tropheryma whipplei (T. whipplei) cause Whipple disease.",
    "What are the symptoms of Vesicoureteral Reflux ?",
    "A small amount of Deflux is injected into the bladder wall.",
    "It is common in Western and industrialized countries. Hepatitis B, C, or Dviral infections.",
    "What is Medigap?\nA Medigap plan is sold by insurance companies. People cannot have a Medigap plan.",
    "Ernest Goodpasture first described the syndrome during the influenza pandemic.",
    "*Protoporphyria XLPP is a variant of erythropoietic protoporphyria.",
    "The larynx has three parts: - Supraglottis: The upper part of the larynx.",
    "The National Hormone and Pituitary Program (NHPP) made hormone. Based on NHPP records, one died from CJD 22 years later.",
])
def test_brands_terms_and_programmes_of_health_pages_are_no_phi(phi_detector, text):
    assert _found(phi_detector, text) == {}


def test_the_same_cues_leave_people_and_places_found(phi_detector):
    found = _found(phi_detector, "Mr. Smith lives in Boston. On 3/4 the patient was seen. "
                                 "John Parkinson first came to clinic.")
    assert {"Smith", "Boston", "3/4", "John Parkinson"} <= set(found), found
