
import pytest

from instructkit import TemplateError
from instructkit.recipe.sources import Source
from instructkit.recordbuilders.template import TemplateBuilder, TemplateSet, load_template_set

TASKS = ["consumer_health_qa", "research_qa", "multiple_choice_qa", "report_labeling",
         "impression_generation", "series_description_harmonization", "diagnosis"]


@pytest.mark.parametrize("task", TASKS)
def test_every_shipped_template_set_loads_with_three_phrasings_and_few_shot(task):
    t = load_template_set(task)
    assert len(t.phrasings) >= 3
    assert len({p.instruction for p in t.phrasings}) == len(t.phrasings)
    assert t.few_shot_examples, "few-shot examples are needed for the few-shot variant"


def _tset(**over):
    data = {"id": "demo", "variables": {"question": "str", "answer": "str"},
            "phrasings": [{"id": "a", "instruction": "Answer A."}, {"id": "b", "instruction": "Answer B."},
                          {"id": "c", "instruction": "Answer C."}],
            "input": "{{ question }}", "output": "{{ answer }}",
            "few_shot": {"k": 1, "examples": [{"input": "q", "output": "a"}]}}
    data.update(over)
    return data


def test_undefined_variable_fails_at_load_naming_template_and_variable():
    with pytest.raises(TemplateError) as exc:
        TemplateSet(_tset(output="{{ answr }}"), "demo.yaml")
    assert "demo" in str(exc.value) and "answr" in str(exc.value)


def test_undefined_variable_in_a_phrasing_is_caught():
    bad = _tset(phrasings=[{"id": "a", "instruction": "About {{ topic }}"},
                           {"id": "b", "instruction": "B"}, {"id": "c", "instruction": "C"}])
    with pytest.raises(TemplateError, match="phrasing 'a'.*topic"):
        TemplateSet(bad, "demo.yaml")


def test_fewer_than_three_phrasings_is_rejected():
    with pytest.raises(TemplateError, match="three phrasings"):
        TemplateSet(_tset(phrasings=[{"id": "a", "instruction": "A"}]), "demo.yaml")


def _rows(n):
    return [{"id": f"r{i}", "question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(n)]


def _build(rows, seed, **kw):
    src = Source(name="demo", type="inline", license="CC0-1.0", rows_inline=rows, id_field="id")
    b = TemplateBuilder("demo_task", [src], templates=TemplateSet(_tset(), "demo.yaml"), seed=seed, **kw)
    return list(b.build())


def test_phrasing_choice_is_reproducible_by_seed_and_independent_of_order():
    rows = _rows(40)
    a = {r["source"]["record_id"]: r["instruction"] for r in _build(rows, seed=1)}
    b = {r["source"]["record_id"]: r["instruction"] for r in _build(list(reversed(rows)), seed=1)}
    c = {r["source"]["record_id"]: r["instruction"] for r in _build(rows, seed=2)}
    assert a == b
    assert a != c
    assert len({v.split("\n")[0] for v in a.values()}) == 3  # all phrasings are used


def test_few_shot_share_controls_the_variant():
    recs = _build(_rows(60), seed=3, few_shot_share=1.0)
    assert all(r["provenance"]["variant"] == "few_shot" for r in recs)
    assert all("Examples:" in r["instruction"] for r in recs)
    recs = _build(_rows(60), seed=3, few_shot_share=0.0)
    assert all(r["provenance"]["variant"] == "zero_shot" for r in recs)


def test_rows_with_missing_or_wrong_typed_fields_are_quarantined():
    from instructkit import Quarantine

    rows = [{"id": "ok", "question": "Q?", "answer": "A."},
            {"id": "missing", "question": "Q?"},
            {"id": "empty", "question": "Q?", "answer": "   "},
            {"id": "wrong", "question": "Q?", "answer": {"nested": 1}}]
    src = Source(name="demo", type="inline", license="CC0-1.0", rows_inline=rows, id_field="id")
    b = TemplateBuilder("demo_task", [src], templates=TemplateSet(_tset(), "demo.yaml"))
    q = Quarantine()
    b.bind(q)
    recs = list(b.build())
    assert [r["source"]["record_id"] for r in recs] == ["ok"]
    got = {(e["source"]["record_id"], e["reason"], e["field"]) for e in q.entries}
    assert got == {("missing", "missing_field", "answer"), ("empty", "missing_field", "answer"),
                   ("wrong", "wrong_type", "answer")}
    assert b.stats.n_in == 4 and b.stats.n_out == 1 and sum(b.stats.dropped.values()) == 3
