"""Nothing a command writes destroys what it did not write (issue 25, item 7 and the lows on
``--out``): each row sets a folder up, runs the installed console script, and checks the exit
code, one short line, no traceback, every file in the folder byte for byte as before, and no
``.partial`` folder or lock left behind. Then the cases that must still work: a rebuild into
the folder the previous build wrote, a linked ``--out``, a report rewritten in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from hostile_common import _recipe, _write, run_cli, workdir  # noqa: F401 - workdir is a fixture


def _everything(folder: Path) -> str:
    """sha256 of every entry under ``folder``: names, file bytes and link targets."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(root) / name
            h.update(p.relative_to(folder).as_posix().encode() + b"\0")
            if p.is_symlink():
                h.update(b"link:" + os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob(".*")
            if ".partial" in p.name or p.name.endswith(".lock") or ".old-" in p.name]


# -- setups: each makes what must survive, under the workdir with a good dataset in `out` --------
def _project_folder(w: Path) -> None:
    (w / "proj" / "src").mkdir(parents=True)
    (w / "proj" / "src" / "main.py").write_text("print('mine')\n")
    (w / "proj" / "data").mkdir()
    (w / "proj" / "data" / "patients.csv").write_text("mrn,name\n1,A\n")
    (w / "proj" / "manifest.json").write_text("{}\n")


def _notes_added(w: Path) -> None:
    (w / "out" / "NOTES.md").write_text("my notes\n")


def _checkpoints_added(w: Path) -> None:
    (w / "out" / "checkpoints").mkdir()
    (w / "out" / "checkpoints" / "step-100.bin").write_bytes(b"\x00weights")


def _empty_folder_added(w: Path) -> None:
    (w / "out" / "checkpoints").mkdir()


def _card_edited(w: Path) -> None:
    card = w / "out" / "README.md"
    card.write_text(card.read_text() + "\nReviewed by the data team.\n")


def _file_added_to_data(w: Path) -> None:
    (w / "out" / "data" / "patients.csv").write_text("mrn\n1\n")


def _legacy_folder_with_a_user_file(w: Path) -> None:
    """A folder an older version wrote (its marker lists no files), plus a user's file."""
    marker = w / "out" / ".instructkit-complete"
    data = json.loads(marker.read_text())
    data.pop("files", None)
    marker.write_text(json.dumps(data))
    (w / "out" / "exports" / "mine.jsonl").write_text("{}\n")


def _parquet_folder_source(w: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (w / "pq").mkdir()
    rows = [{"question": f"What is condition {i} and how is it treated?",
             "answer": f"Condition {i} is treated with rest, fluids and a follow-up visit."} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), w / "pq" / "rows.parquet")
    _write(w / "pq.yaml", _recipe(sources=[{"name": "q", "type": "parquet", "path": "pq",
                                            "license": "MIT", "phi": False}]))


def _source_in_the_output(w: Path) -> None:
    _write(w / "again.yaml", _recipe(sources=[{"name": "q", "type": "jsonl", "license": "MIT",
                                               "path": "out/exports/messages.jsonl", "phi": False}]))


def _records(w: Path) -> None:
    lines = [json.dumps({"id": f"r{i}", "task": "consumer_health_qa", "method": "template",
                         "instruction": f"What is test {i}?", "input": "",
                         "output": f"Test {i} is a test.", "source": {"name": "q", "license": "MIT"}})
             for i in range(3)]
    (w / "in.jsonl").write_text("\n".join(lines) + "\n")


def _user_html(w: Path) -> None:
    (w / "notes.html").write_text("<html><body>my page</body></html>\n")


def _docs_and_user_folder(w: Path) -> None:
    (w / "docs").mkdir()
    (w / "docs" / "a.md").write_text("# Fever\n\nFever is a raised body temperature.\n")
    (w / "mine").mkdir()
    (w / "mine" / "documents.json").write_text('{"my": "file"}\n')


def _second_dataset(w: Path) -> None:
    shutil.copytree(w / "out", w / "other")


def _link_to_out(w: Path) -> None:
    (w / "link").symlink_to("out")


# id, setup, command, expected exit, message pattern
CASES = [
    ("project folder with src/ and data/patients.csv", _project_folder,
     ["build", "good.yaml", "--out", "proj"], 2,
     r"--out proj: holds files the previous build did not write: data/patients\.csv, src/; "),
    ("NOTES.md added to a built dataset", _notes_added,
     ["build", "good.yaml", "--out", "out"], 2, r"did not write: NOTES\.md; choose another folder"),
    ("checkpoints/ added to a built dataset", _checkpoints_added,
     ["build", "good.yaml", "--out", "out"], 2, r"did not write: checkpoints/;"),
    ("an empty folder added to a built dataset", _empty_folder_added,
     ["build", "good.yaml", "--out", "out"], 2, r"did not write: checkpoints/;"),
    ("the card edited after the build", _card_edited,
     ["build", "good.yaml", "--out", "out"], 2, r"README\.md \(changed since the build\)"),
    ("a file added inside data/", _file_added_to_data,
     ["build", "good.yaml", "--out", "out"], 2, r"did not write: data/patients\.csv;"),
    ("a user file in a folder an older version wrote", _legacy_folder_with_a_user_file,
     ["build", "good.yaml", "--out", "out"], 2, r"did not write: exports/mine\.jsonl;"),
    ("--out inside a source folder", _parquet_folder_source,
     ["build", "pq.yaml", "--out", "pq/built"], 2,
     r"--out pq/built: is inside what source 'q' reads \(.*pq\); a build must not write where it reads"),
    ("--out is a source folder", _parquet_folder_source,
     ["build", "pq.yaml", "--out", "pq"], 2, r"--out pq: "),
    ("--out holds a source file", _source_in_the_output,
     ["build", "again.yaml", "--out", "out"], 2, r"--out out: holds what source 'q' reads"),
    ("report --out onto the dataset's parquet", None,
     ["report", "out", "--out", "out/data/train-00000-of-00001.parquet"], 2,
     r"exists and is not a report instructkit wrote"),
    ("report --out onto the user's page", _user_html,
     ["report", "out", "--out", "notes.html"], 2, r"--out notes\.html: exists and is not a report"),
    ("report --out into another dataset folder", _second_dataset,
     ["report", "out", "--out", "other/extra.html"], 2, r"--out other/extra\.html: is inside another dataset folder"),
    ("report --out onto another dataset's report", _second_dataset,
     ["report", "out", "--out", "other/report.html"], 2, r"is inside another dataset folder"),
    ("report --out a folder", None, ["report", "out", "--out", "out/data"], 2, r"is a folder"),
    ("anonymize --out equal to the input", _records,
     ["anonymize", "in.jsonl", "--out", "in.jsonl"], 2, r"--out in\.jsonl: is the input file"),
    ("dedup --out equal to the input", _records,
     ["dedup", "in.jsonl", "--out", "./in.jsonl"], 2, r"is the input file"),
    ("validate --quarantine equal to the input", _records,
     ["validate", "in.jsonl", "--out", "kept.jsonl", "--quarantine", "in.jsonl"], 2,
     r"--quarantine in\.jsonl: is the input file"),
    ("dedup --out inside a built dataset", _records,
     ["dedup", "in.jsonl", "--out", "out/exports/deduped.jsonl"], 2,
     r"is inside the dataset folder .*out that `instructkit build` wrote"),
    ("anonymize's quarantine inside a built dataset", _records,
     ["anonymize", "in.jsonl", "--out", "anon.jsonl", "--quarantine", "out/quarantine.jsonl"], 2,
     r"--quarantine out/quarantine\.jsonl: is inside the dataset folder"),
    ("index --out a folder that is not an index", _docs_and_user_folder,
     ["index", "docs", "--out", "mine"], 2, r"--out mine: the folder holds files that are not an instructkit index"),
    ("index --out inside its documents", _docs_and_user_folder,
     ["index", "docs", "--out", "docs/index"], 2, r"--out docs/index: is inside what DOCS entry docs reads"),
    ("index --out inside a built dataset", _docs_and_user_folder,
     ["index", "docs", "--out", "out/index"], 2, r"is inside the dataset folder"),
    ("a link to a built dataset holding a user file", lambda w: (_link_to_out(w), _notes_added(w)),
     ["build", "good.yaml", "--out", "link"], 2, r"did not write: NOTES\.md"),
]


@pytest.mark.parametrize("name,setup,args,code,pattern", CASES, ids=[c[0] for c in CASES])
def test_out_never_destroys_what_it_did_not_write(workdir, name, setup, args, code, pattern):
    if setup is not None:
        setup(workdir)
    before = _everything(workdir)
    r = run_cli(*args, cwd=workdir)
    assert r.returncode == code, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 400, r.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert _everything(workdir) == before, "a file changed, appeared or vanished"
    assert not _leftovers(workdir)


# -- what must still work ------------------------------------------------------------------------
def test_a_rebuild_replaces_the_folder_the_previous_build_wrote(workdir):
    _write(workdir / "other.yaml", _recipe(name="other"))
    r = run_cli("build", "other.yaml", "--out", "out", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    out = workdir / "out"
    assert json.loads((out / "manifest.json").read_text())["recipe"]["name"] == "other"
    listed = json.loads((out / ".instructkit-complete").read_text())["files"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and p.name != ".instructkit-complete")
    assert sorted(listed) == on_disk
    for must in ("manifest.json", "README.md", "recipe.yaml", "quarantine.jsonl", "report.html",
                 "exports/messages.jsonl", "data/train-00000-of-00001.parquet"):
        assert must in listed, must
    assert not _leftovers(workdir)


def test_a_folder_an_older_version_wrote_is_still_replaced(workdir):
    marker = workdir / "out" / ".instructkit-complete"
    data = json.loads(marker.read_text())
    data.pop("files")
    marker.write_text(json.dumps(data))
    r = run_cli("build", "good.yaml", "--out", "out", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "files" in json.loads(marker.read_text())


def test_a_linked_out_is_built_into_its_target_and_the_link_stays(workdir):
    (workdir / "link").symlink_to("out")
    _write(workdir / "other.yaml", _recipe(name="other"))
    r = run_cli("build", "other.yaml", "--out", "link", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (workdir / "link").is_symlink() and os.readlink(workdir / "link") == "out"
    assert json.loads((workdir / "out" / "manifest.json").read_text())["recipe"]["name"] == "other"
    assert not _leftovers(workdir)


def test_a_report_rewritten_in_place_keeps_the_folder_rebuildable(workdir):
    r = run_cli("report", "out", "--records", "3", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("report", "out", "--out", "page.html", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("report", "out", "--out", "page.html", cwd=workdir)  # over its own report
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("report", "out", "--out", "out/short.html", "--records", "2", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "short.html" in json.loads((workdir / "out" / ".instructkit-complete").read_text())["files"]
    r = run_cli("build", "good.yaml", "--out", "out", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not _leftovers(workdir)


def test_a_file_added_while_the_build_runs_is_kept(workdir, monkeypatch):
    """The check runs again just before the swap: a file that appeared meanwhile stops it."""
    from instructkit._exceptions import OutputError
    from instructkit.dataset import writer as writer_mod
    from instructkit.pipeline import Pipeline

    monkeypatch.chdir(workdir)
    real_record = writer_mod.build_record

    def add_then_record(folder):
        (workdir / "out" / "NOTES.md").write_text("written during the build\n")
        return real_record(folder)

    monkeypatch.setattr(writer_mod, "build_record", add_then_record)
    from instructkit.recipe.load import load_recipe

    pipe = Pipeline.from_recipe(load_recipe(str(workdir / "good.yaml")))
    with pytest.raises(OutputError, match="NOTES.md"):
        pipe.run(workdir / "out", quiet=True)
    assert (workdir / "out" / "NOTES.md").read_text() == "written during the build\n"
    assert not _leftovers(workdir)
