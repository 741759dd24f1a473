"""Phased and curriculum-ordered training exports (recipe ``output.phases`` / ``output.curriculum``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructkit import RecipeError, build, load_recipe, read_dataset
from instructkit.dataset.phases import measure, write_phase_exports

from conftest import template_quickstart

LABELING = ("report_labeling",)


def _recipe(**output) -> dict:
    """The template part of the quickstart, with the stages that need models off (the phase
    writer only sees finished records, whichever stages made them)."""
    r = template_quickstart()
    r["stages"] = {"anonymize": False, "audit": False}
    r["output"] = {"formats": ["messages", "alpaca", "sharegpt"], **output}
    return r


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in _lines(path)]


def test_phases_split_the_exports_in_order_and_the_manifest_and_card_say_so(tmp_path):
    phases = [{"name": "general", "task": ["consumer_health_qa", "research_qa", "multiple_choice_qa"]},
              {"name": "radiology", "task": ["report_labeling", "impression_generation"]},
              {"name": "rest"}]
    out = tmp_path / "out"
    result = build(_recipe(phases=phases), out, quiet=True)
    recs = {r["id"]: r for r in read_dataset(out)}
    order = result.manifest["export_order"]
    assert [p["name"] for p in order["phases"]] == ["general", "radiology", "rest"]
    assert order["unphased"] == 0 and order["curriculum"] is None
    dirs = sorted(p.name for p in (out / "exports").iterdir() if p.is_dir())
    assert dirs == ["phase-1-general", "phase-2-radiology", "phase-3-rest"]
    total = 0
    for p, tasks in zip(order["phases"], (set(phases[0]["task"]), set(phases[1]["task"]), None)):
        d = out / p["dir"]
        for fmt in ("messages", "alpaca", "sharegpt"):
            full = _lines(out / "exports" / f"{fmt}.jsonl")
            part = _lines(d / f"{fmt}.jsonl")
            assert len(part) == p["records"]
            assert set(part) <= set(full), "a phase file holds the full export's lines, unchanged"
        ids = _ids(d / "messages.jsonl")
        total += len(ids)
        got = {recs[i]["task"] for i in ids}
        if tasks is not None:
            assert got == tasks
        else:  # the catch-all took what the first two did not
            assert got and not got & (set(phases[0]["task"]) | set(phases[1]["task"]))
        assert p["by_task"] == {t: sum(1 for i in ids if recs[i]["task"] == t) for t in sorted(got)}
    assert total == len(recs) == result.records
    # the manifest on disk has it, and the card lists the phases in order
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["export_order"] == order
    card = (out / "README.md").read_text()
    assert "Training phases" in card
    assert card.index("exports/phase-1-general/") < card.index("exports/phase-2-radiology/")
    assert "task `report_labeling`" in card


def test_records_matching_no_phase_stay_in_the_full_exports_only(tmp_path):
    out = tmp_path / "out"
    result = build(_recipe(phases=[{"name": "labeling", "task": "report_labeling"}]), out, quiet=True)
    order = result.manifest["export_order"]
    n_label = sum(1 for r in read_dataset(out) if r["task"] == "report_labeling")
    assert order["phases"][0]["records"] == n_label > 0
    assert order["unphased"] == result.records - n_label > 0
    assert "match no phase" in (out / "README.md").read_text()


def test_measure_filters_split_by_number_of_labels(tmp_path):
    phases = [{"name": "normal", "task": "report_labeling", "labels": {"max": 0}},
              {"name": "one", "task": "report_labeling", "labels": {"min": 1, "max": 1}},
              {"name": "several", "task": "report_labeling", "labels": {"min": 2}}]
    out = tmp_path / "out"
    result = build(_recipe(phases=phases), out, quiet=True)
    recs = {r["id"]: r for r in read_dataset(out)}
    seen = []
    for p, (lo, hi) in zip(result.manifest["export_order"]["phases"], ((0, 0), (1, 1), (2, 99))):
        n = [measure("labels", recs[i]) for i in _ids(out / p["dir"] / "messages.jsonl")]
        assert n and all(lo <= v <= hi for v in n), p["name"]
        seen += n
    assert len(seen) == sum(1 for r in recs.values() if r["task"] == "report_labeling")
    # 'normal' is no finding: it counts as zero labels
    normal = next(r for r in recs.values() if r["task"] == "report_labeling" and r["output"] == "normal")
    assert measure("labels", normal) == 0


@pytest.mark.parametrize("order", ["easy_to_hard", "hard_to_easy"])
def test_curriculum_orders_every_export_by_the_named_measure(tmp_path, order):
    plain = tmp_path / "plain"
    build(_recipe(), plain, quiet=True)
    out = tmp_path / "cur"
    cur = {"by": "length", "order": order} if order == "hard_to_easy" else "length"
    result = build(_recipe(curriculum=cur, phases=[{"name": "labeling", "task": "report_labeling"},
                                                   {"name": "rest"}]), out, quiet=True)
    assert result.manifest["export_order"]["curriculum"] == {"by": "length", "order": order}
    recs = {r["id"]: r for r in read_dataset(out)}
    for path in (out / "exports" / "messages.jsonl", out / "exports" / "phase-2-rest" / "messages.jsonl"):
        lengths = [measure("length", recs[i]) for i in _ids(path)]
        assert lengths == sorted(lengths, reverse=order == "hard_to_easy"), path
    for fmt in ("messages", "alpaca", "sharegpt"):  # the same lines, reordered
        assert sorted(_lines(out / "exports" / f"{fmt}.jsonl")) == sorted(_lines(plain / "exports" / f"{fmt}.jsonl"))
        assert _lines(out / "exports" / f"{fmt}.jsonl") != _lines(plain / "exports" / f"{fmt}.jsonl")
    # the Parquet data keeps the build order
    assert list(recs) == [r["id"] for r in read_dataset(plain)]
    assert "Curriculum" in (out / "README.md").read_text()


def test_a_rebuild_without_phases_removes_the_old_phase_folders(tmp_path):
    out = tmp_path / "out"
    build(_recipe(phases=[{"name": "labeling", "task": "report_labeling"}]), out, quiet=True)
    assert (out / "exports" / "phase-1-labeling" / "messages.jsonl").is_file()
    result = build(_recipe(), out, quiet=True)
    assert not any(p.is_dir() for p in (out / "exports").iterdir())
    assert "export_order" not in result.manifest


def test_phases_can_be_written_for_an_existing_folder(tmp_path):
    out = tmp_path / "out"
    build(_recipe(), out, quiet=True)
    order = write_phase_exports(out, {"phases": [{"name": "labeling", "task": "report_labeling"}]},
                                formats=["messages"])
    assert order["phases"][0]["records"] == len(_lines(out / "exports" / "phase-1-labeling" / "messages.jsonl")) > 0
    assert not (out / "exports" / "phase-1-labeling" / "alpaca.jsonl").exists()


@pytest.mark.parametrize("output,message", [
    ({"phases": [{"name": "a"}, {"name": "a", "task": "x"}]}, "output.phases.1.name: duplicate phase name 'a'"),
    ({"phases": [{"name": "a", "labels": {"min": 3, "max": 1}}]}, "output.phases.0.labels: min 3 is above max 1"),
    ({"phases": [{"name": "a", "difficulty": {"max": 1}}]}, "output.phases.0: unknown field(s): difficulty"),
    ({"phases": [{"name": "Bad Name"}]}, "output.phases.0.name"),
    ({"curriculum": "perplexity"}, "output.curriculum"),
    ({"curriculum": {"by": "length", "order": "random"}}, "output.curriculum"),
])
def test_bad_phase_settings_are_recipe_errors_naming_the_field(output, message):
    r = template_quickstart()
    r["output"] = output
    with pytest.raises(RecipeError) as exc:
        load_recipe(r)
    assert any(message in e for e in exc.value.errors), exc.value.errors


def test_the_curriculum_default_order_comes_from_the_schema():
    from instructkit._resources import load_schema
    from instructkit.dataset.phases import ExportOrder

    schema = load_schema("recipe.schema.json")["properties"]["output"]["properties"]["curriculum"]
    assert ExportOrder.from_output({"curriculum": "labels"}).curriculum_order == \
        schema["anyOf"][1]["properties"]["order"]["default"] == "easy_to_hard"
