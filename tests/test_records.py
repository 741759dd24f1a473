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


def _mutations(rec):
    """Records one change away from ``rec``: every field dropped, emptied, retyped or
    extended, at every depth."""
    def walk(node, path):
        if isinstance(node, dict):
            for k in list(node):
                yield path + [k], "drop"
                yield from walk(node[k], path + [k])
            yield path + ["unexpected_field"], "add"
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, path + [i])
        for kind in ("empty", "number", "null", "list", "bad_value"):
            yield path, kind

    for path, kind in walk(rec, []):
        out = json.loads(json.dumps(rec))
        parent = out
        for p in path[:-1]:
            parent = parent[p]
        if not path:
            continue
        key = path[-1]
        if kind == "drop":
            del parent[key]
        elif kind == "add":
            parent[key] = "x"
        else:
            parent[key] = {"empty": "", "number": 3, "null": None, "list": [], "bad_value": "not-a-hash!"}[kind]
        yield out


def test_compiled_check_and_jsonschema_agree_on_every_near_miss():
    """The fast compiled validity check (fastjsonschema) and jsonschema must judge alike:
    a record one change away from a valid one, for every change of every field."""
    from instructkit.records import _record_check, record_validator

    import fastjsonschema

    def fast_ok(r):
        try:
            _record_check()(r)
            return True
        except fastjsonschema.JsonSchemaException:
            return False

    base = _rec(meta={"note": "x", "tags": ["a"]},
                context=[{"chunk_id": "c1", "doc_id": "d1", "text": "passage", "title": None, "start": 0,
                          "end": 7, "score": 0.5}])
    assert schema_errors(base) == []
    cases = list(_mutations(base))
    assert len(cases) > 100
    judged = [(fast_ok(r), record_validator().is_valid(r)) for r in cases]
    assert all(a == b for a, b in judged), [i for i, (a, b) in enumerate(judged) if a != b][:5]
    assert any(not b for _, b in judged) and any(b for _, b in judged)
