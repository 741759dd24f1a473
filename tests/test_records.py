import json

import pytest

from instructkit import make_record, record_id
from instructkit.records import schema_errors, to_alpaca, to_sharegpt


def _rec(**over):
    base = dict(task="consumer_health_qa", method="template", instruction="Answer the question.",
                input="What is asthma?", output="A long-term disease of the airways.",
                source={"name": "s", "license": "CC-BY-4.0", "record_id": "r1"},
                provenance={"builder": "template", "seed": 1, "template_id": "t", "template_hash": "0123456789abcdef"})
    base.update(over)
    return make_record(**base)


def test_made_record_is_valid_and_round_trips_through_json():
    rec = _rec()
    assert schema_errors(rec) == []
    back = json.loads(json.dumps(rec))
    assert back == rec and schema_errors(back) == []


def test_id_is_a_stable_content_hash():
    a, b = _rec(), _rec()
    assert a["id"] == b["id"] == record_id("consumer_health_qa", "template", "r1", "Answer the question.",
                                            "What is asthma?", "A long-term disease of the airways.")
    assert _rec(output="Something else.")["id"] != a["id"]


def test_messages_and_training_formats():
    rec = _rec()
    assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]
    assert rec["messages"][0]["content"] == "Answer the question.\n\nWhat is asthma?"
    assert to_alpaca(rec) == {"instruction": "Answer the question.", "input": "What is asthma?",
                              "output": "A long-term disease of the airways."}
    assert [t["from"] for t in to_sharegpt(rec)["conversations"]] == ["human", "gpt"]


def test_schema_errors_name_the_field_without_echoing_values():
    rec = _rec()
    rec["method"] = "handwritten"
    del rec["source"]["license"]
    rec["provenance"] = {"builder": "template", "seed": 1}
    errs = schema_errors(rec)
    assert any(e.startswith("method: must be one of") for e in errs)
    assert any(e.startswith("source: missing required field(s) 'license'") for e in errs)
    assert any(e.startswith("provenance: does not match any allowed form") for e in errs)
    assert not any("handwritten" in e for e in errs)


@pytest.mark.parametrize("field", ["instruction", "output"])
def test_empty_required_text_is_an_error(field):
    rec = _rec()
    rec[field] = ""
    assert any(e.startswith(f"{field}: must not be empty") for e in schema_errors(rec))
