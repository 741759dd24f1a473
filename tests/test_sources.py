import json

import pytest

from instructkit import SourceError
from instructkit.recipe.sources import Source, source_from_config
from conftest import shared_file


def _src(tmp_path, name, content: bytes, type_):
    p = tmp_path / name
    p.write_bytes(content)
    return Source(name="t", type=type_, license="MIT", path=p)


def test_jsonl_bad_lines_are_yielded_as_errors_not_lost(tmp_path):
    content = b'{"q": "a"}\n{not json}\n\xff\xfe\n[1,2]\n{"q": "b"}\n'
    rows = list(_src(tmp_path, "x.jsonl", content, "jsonl").rows())
    assert [r.error is None for r in rows] == [True, False, False, False, True]
    assert rows[1].location == "x.jsonl:2" and "not valid JSON" in rows[1].error
    assert "UTF-8" in rows[2].error


@pytest.mark.parametrize("type_,name", [("jsonl", "e.jsonl"), ("csv", "e.csv"), ("json", "e.json")])
def test_empty_file_is_a_clear_error(tmp_path, type_, name):
    with pytest.raises(SourceError, match="empty") as exc:
        list(_src(tmp_path, name, b"  \n", type_).rows())
    assert name in str(exc.value)


def test_csv_not_utf8_names_file_and_line(tmp_path):
    src = _src(tmp_path, "r.csv", b"a,b\nok,fine\nbad,caf\xe9\n", "csv")
    with pytest.raises(SourceError) as exc:
        list(src.rows())
    assert "r.csv:3" in str(exc.value) and "UTF-8" in str(exc.value)


def test_missing_file_is_a_clear_error(tmp_path):
    src = Source(name="t", type="csv", license="MIT", path=tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="path not found"):
        list(src.rows())


def test_where_and_limit_are_counted(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text("".join(json.dumps({"q": f"item {i}", "k": "keep" if i % 2 else "drop"}) + "\n" for i in range(10)))
    src = source_from_config({"name": "x", "type": "jsonl", "path": str(p), "license": "MIT",
                              "where": {"k": "^keep$"}, "limit": 3})
    rows = list(src.rows())
    assert len(rows) == 3 and all(r.data["k"] == "keep" for r in rows)
    assert src.n_skipped_where == 3


def test_license_is_never_guessed():
    assert source_from_config({"name": "x", "type": "inline", "rows": [], "license": ""}).license == "unknown"


def test_parquet_and_hf_local_dataset(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"question": "Q1?", "answer": "A1."}, {"question": "Q2?", "answer": "A2."}])
    ds.to_parquet(str(tmp_path / "d.parquet"))
    rows = list(Source(name="p", type="parquet", license="MIT", path=tmp_path / "d.parquet").rows())
    assert [r.data["question"] for r in rows] == ["Q1?", "Q2?"]
    ds.save_to_disk(str(tmp_path / "saved"))
    # datasets.load_dataset on a local folder of data files (offline)
    (tmp_path / "hf").mkdir()
    ds.to_json(str(tmp_path / "hf" / "train.jsonl"))
    rows = list(Source(name="h", type="hf", license="MIT", path=tmp_path / "hf").rows())
    assert [r.data["answer"] for r in rows] == ["A1.", "A2."]


def test_medquad_reader_on_real_data():
    folder = shared_file("medquad/1_CancerGov_QA")
    src = Source(name="mq", type="medquad", license="CC-BY-4.0", path=folder)
    rows = list(src.rows())
    # count the QAPair elements independently of the reader (the data README's 845 counts QAPairs too)
    import re

    expected = sum(len(re.findall(r"<QAPair\b[^s>]*>", f.read_text(encoding="utf-8")))
                   for f in folder.glob("*.xml"))
    assert len(rows) == expected == 729
    r = rows[0]
    assert r.record_id == "0000001_1-1" and r.data["qtype"] == "information"
    assert r.data["question"].startswith("What is (are) Adult Acute Lymphoblastic Leukemia")
    assert r.data["url"].startswith("https://www.cancer.gov/")


def test_source_takes_a_string_path_like_a_recipe(monkeypatch):
    from instructkit import Source

    src = Source(name="s", type="jsonl", path="pkg://samples/health_questions.jsonl", id_field="id",
                 license="Apache-2.0")
    assert src.path.is_file() and len(list(src.rows())) > 0
    monkeypatch.setenv("IK_TEST_DIR", str(src.path.parent))
    assert Source(name="t", type="jsonl", path="${IK_TEST_DIR}/health_questions.jsonl").path == src.path
