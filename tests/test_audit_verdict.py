"""One verdict (issue 26, item 7): ``instructkit audit``, publish gate 1 and report.html give
the same counts and the same split into kinds that block and kinds that only report."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("presidio_analyzer", reason="needs instructkit[anonymize]")

ROWS = [
    {"id": "q1", "question": "Who saw the patient?",
     "answer": "Dr. Alvarez saw Maria Lopez in clinic; John Whitaker drove her home."},
    {"id": "q2", "question": "When was the last visit?",
     "answer": "Peter Novak was seen on 03/14/2021 and felt better."},
]


def _recipe() -> dict:
    source = {"name": "inline-notes", "type": "inline", "rows": ROWS, "id_field": "id", "license": "CC-BY-4.0"}
    # anonymize off: names and a date stay, so the audit has report-only and blocking kinds
    return {"name": "verdict-test", "seed": 1, "sources": [source],
            "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["inline-notes"]}],
            "stages": {"anonymize": False, "dedup": True, "validate": True, "audit": {"names": True}}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from instructkit.api import build

    out = tmp_path_factory.mktemp("verdict") / "ds"
    build(_recipe(), out, quiet=True)
    return out


def test_audit_command_gate_1_and_report_page_say_the_same(folder, tmp_path):
    from typer.testing import CliRunner

    from instructkit.cli.app import app
    from instructkit.dataset.report import write_report
    from instructkit.hub.publisher import check_folder

    res = CliRunner().invoke(app, ["audit", str(folder), "--json"])
    assert res.exit_code == 1, res.output  # the date blocks
    report = json.loads(res.output)
    verdict = report["verdict"]
    assert verdict["report_only"]["NAME"] >= 3 and verdict["blocking"]["DATE"]["count"] >= 1
    assert verdict["over_limit"] == {"DATE": verdict["blocking"]["DATE"]["count"]}
    assert "publish gate 1" in report["policy"]["from"]

    gate1 = check_folder(folder)[3][0]
    assert not gate1.passed
    assert gate1.verdict == verdict  # counts, limits, block/report split, names checked
    text = "\n".join(gate1.details)
    names = verdict["report_only"]["NAME"]
    assert f"report only: NAME {names}" in text and "kinds that never block: LONG_NUMBER, NAME" in text
    assert f"blocking: DATE {verdict['blocking']['DATE']['count']}" in text

    plain = CliRunner().invoke(app, ["audit", str(folder)])
    for line in ("report only: NAME", "blocking: DATE", "kinds that block:"):
        got = [ln.strip() for ln in plain.output.splitlines() if line in ln]
        assert got and got[0] in text, (line, plain.output)

    page = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")
    flat = re.sub(r"\s+", " ", page)
    assert f"report only: NAME {names}" in flat
    assert f"blocking: DATE {verdict['blocking']['DATE']['count']}" in flat
    assert "suspects: none" not in flat
    for value in ("Maria Lopez", "03/14/2021"):
        assert value not in text and value not in plain.output


def test_build_audit_is_judged_under_the_gates_limits(folder):
    """A build's own audit stands in for gate 1 on the build's report page: its counts, but
    the package's limits (a recipe that raised a limit for its build does not pass the gate)."""
    from instructkit.hub.publisher import check_folder

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    build_audit = next(s["extra"]["audit"] for s in manifest["stages"] if s["stage"] == "audit")
    loose = {**build_audit, "passed": True, "failed_types": [], "limits": {**build_audit["limits"], "DATE": 99}}
    gate1 = check_folder(folder, audit=loose)[3][0]
    assert not gate1.passed and gate1.verdict["over_limit"].get("DATE")
    assert gate1.verdict["report_only"]["NAME"] == build_audit["suspects_by_type"]["NAME"]


def test_verdict_lines_name_blocking_and_report_only_kinds():
    from instructkit.steps.audit import default_limits
    from instructkit.steps.audit_verdict import audit_verdict

    v = audit_verdict({"suspects_by_type": {"NAME": 44}, "records_scanned": 9, "names_checked": True},
                      default_limits())
    assert v.passed and v.lines()[0] == "passed over 9 records"
    assert v.lines()[1].startswith("blocking: none (kinds that block: ") and "SSN" in v.lines()[1]
    assert v.lines()[2] == "report only: NAME 44 (kinds that never block: LONG_NUMBER, NAME)"
    tight = audit_verdict({"suspects_by_type": {"NAME": 44}, "records_scanned": 9, "names_checked": True},
                          {**default_limits(), "NAME": 0})
    assert not tight.passed and tight.over == {"NAME": 44}
    unchecked = audit_verdict({"records_scanned": 9}, default_limits())
    assert "names were not looked for" in unchecked.lines()[2]
