"""The HTML dataset report: its figures follow the card and the publish gates, it is
self-contained, and a build writes it next to the card. (The page in a real browser:
``test_report_browser.py``.)"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from instructkit.api import build

DIABETES = {"question": "How is type 2 diabetes treated in adults?",
            "answer": "With healthy eating, physical activity, weight loss and medicines such as "
                      "metformin; blood sugar is checked regularly."}
ROWS = [{"id": f"q{i}", **DIABETES} for i in range(4)] + [
    {"id": "z1", "question": "What is asthma?",
     "answer": "A long-term disease of the airways that makes breathing hard at times. "
               "Ask Dr. John Smith at the clinic about an inhaler <script>alert(1)</script>."},
    {"id": "z2", "question": "What is a migraine?",
     "answer": "A headache disorder with attacks of throbbing pain, often with nausea and light sensitivity. "
               "In one study, 11 males [M] and 21 females [F] kept headache diaries."},
]


@pytest.fixture
def quickstart(report_quickstart) -> Path:
    return report_quickstart


@pytest.fixture(scope="module")
def duplicates(tmp_path_factory) -> Path:
    """A small build where dedup merges four copies of one answer and anonymize replaces a name."""
    out = tmp_path_factory.mktemp("report") / "dups"
    recipe = {"name": "report-dups", "seed": 1,
              "sources": [{"name": "inline-qa", "type": "inline", "rows": ROWS, "id_field": "id",
                           "license": "CC-BY-4.0"}],
              "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["inline-qa"]}],
              "stages": {"dedup": True, "audit": {"names": False}}}
    build(recipe, out, quiet=True)
    return out


def _page(folder: Path, **kw) -> str:
    from instructkit.dataset.report import write_report

    return write_report(folder, folder / "r.html", **kw).read_text(encoding="utf-8")


def _fact(html: str, name: str) -> int:
    return int(re.search(rf'data-fact="{name}">([\d,]+)<', html).group(1).replace(",", ""))


def test_build_writes_the_report_next_to_the_card(quickstart):
    page = quickstart / "report.html"
    assert page.is_file() and (quickstart / "README.md").is_file()
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "instructkit quickstart" in html


def test_output_report_false_writes_none(tmp_path):
    from instructkit.dataset.report import wants_report

    assert wants_report(None) is True  # the schema's default
    assert wants_report({"output": {"report": False}}) is False
    recipe = {"name": "no-report", "seed": 1,
              "sources": [{"name": "inline-qa", "type": "inline", "rows": ROWS[4:], "id_field": "id",
                           "license": "CC-BY-4.0"}],
              "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["inline-qa"]}],
              "stages": {"anonymize": False, "dedup": False, "audit": False, "bias_report": False},
              "output": {"report": False}}
    build(recipe, tmp_path / "o", quiet=True)
    assert (tmp_path / "o" / "README.md").is_file() and not (tmp_path / "o" / "report.html").exists()


def test_report_figures_follow_the_manifest_and_the_data(quickstart, duplicates):
    """The page's counts are the manifest's (the card's); what it adds (task x method, per
    source) is aggregated with Arrow and equals a loop over the records."""
    from collections import Counter

    from instructkit.dataset.reader import open_dataset
    from instructkit.dataset.report_data import _counts, arrow_table, load_report_data

    for folder in (quickstart, duplicates):
        ds = open_dataset(folder)
        data = load_report_data(folder)
        counts = ds.manifest["counts"]
        assert data.stats.records == counts["records"] == len(ds)
        assert dict(data.stats.tasks) == counts["task"] and dict(data.stats.methods) == counts["method"]
        table = arrow_table(folder, lengths=False)
        loop_tm = Counter((r["task"], r["method"]) for r in ds.records())
        assert _counts(table, ["task", "method"]) == dict(loop_tm)
        assert dict(data.source_records) == dict(Counter(r["source"]["name"] for r in ds.records()))


def test_arrow_table_reads_model_written_records(tmp_path):
    """Provenance JSON of model-written records, including a batch the Arrow JSON reader
    refuses (a number where a string was seen) that falls back row by row."""
    from instructkit.dataset.report_data import arrow_table
    from instructkit.dataset.writer import ShardWriter

    def rec(i, **prov):
        return {"id": f"{i:024x}", "task": "guideline_qa", "method": "rag", "instruction": f"Question {i}?",
                "input": "", "output": f"Answer {i}.", "messages": [],
                "source": {"name": "guides", "license": "LicenseRef-US-Public-Domain", "record_id": str(i)},
                "provenance": {"builder": "rag", "seed": 1, **prov}}

    recs = [rec(i, prompt_id="rag_qa", prompt_hash="ab" * 16, model="SmolLM2-135M", provider="llama.cpp",
                params={"temperature": 0.2}) for i in range(5)]
    recs += [rec(9, template_id="t", template_hash="cd" * 8, model=7)]  # a number where a string was
    w = ShardWriter(tmp_path / "m", formats=[])
    w.write(recs)
    w.close()
    (tmp_path / "m" / "data").mkdir()
    w.shards[0].replace(tmp_path / "m" / "data" / "train-00000-of-00001.parquet")
    table = arrow_table(tmp_path / "m")
    assert table.num_rows == 6
    assert table.column("prov_model").to_pylist() == ["SmolLM2-135M"] * 5 + ["7"]


def test_token_counts_equal_the_quality_filters_measure(quickstart):
    import pyarrow as pa

    from instructkit.dataset.report_data import token_counts
    from instructkit.dataset.reader import read_dataset
    from instructkit.steps.quality.text import approx_tokens

    texts = [r[f] for r in read_dataset(quickstart) for f in ("instruction", "input", "output")]
    texts += ["", "Ångström-level résumé: 12.5 mg/dL (≥ 3×)", "naïve_test  x\ty", "supercalifragilistic!!"]
    assert token_counts(pa.array(texts)).to_pylist() == [approx_tokens(t) for t in texts]


def test_page_follows_the_card_and_the_publish_gates(quickstart):
    from instructkit.hub import publish

    html = (quickstart / "report.html").read_text(encoding="utf-8")
    manifest = json.loads((quickstart / "manifest.json").read_text())
    card = (quickstart / "README.md").read_text()
    assert _fact(html, "records") == manifest["records"]
    assert f"| records | {_fact(html, 'records')} |" in card
    assert _fact(html, "quarantined") == manifest["quarantined"]
    # records by task: the composition table holds the card's counts
    for task, n in manifest["counts"]["task"].items():
        assert re.search(rf"<td>{task}</td>(<td class=\"n\">[\d,]+</td>)*<td class=\"n\">{n}</td></tr>", html), task
    # the gates as `instructkit publish --dry-run` reports them
    dry = publish(quickstart, "org/name", dry_run=True)
    shown = re.findall(r'class="badge (pass|fail)">[^<]*</span></span>\s*<span class="d"><strong>(\d)\.', html)
    assert [(int(n), v == "pass") for v, n in shown] == [(g.number, g.passed) for g in dry.gates]
    assert "report.html" not in {f.path for f in dry.files}  # it holds quarantined records: never uploaded
    # every source with its licence
    for s in manifest["sources"]:
        assert f"<td>{s['name']}</td><td>{s['license']}" in html


def test_page_is_self_contained_and_draws_its_charts_without_js(quickstart):
    html = (quickstart / "report.html").read_text(encoding="utf-8")
    # nothing is fetched: no external scripts, styles, images, fonts or frames
    assert not re.search(r"<(script|img|iframe|link|source|video|audio)[^>]*\b(src|href)=", html, re.I)
    assert "@import" not in html and "url(" not in html
    # the charts are static SVG in the HTML (no script needed), each with marks and a title
    svgs = re.findall(r"<svg class=\"chart\".*?</svg>", html, re.S)
    assert len(svgs) >= 5
    for svg in svgs:
        assert "<title" in svg and ("<rect" in svg or "<line" in svg)
    for section in ("overview", "composition", "lengths", "dropped", "anonymization", "bias", "llm",
                    "records", "quarantine", "dedup"):
        assert f'id="{section}"' in html
    assert len(html.encode()) < 1_000_000


def test_records_show_provenance_and_mark_placeholders(duplicates):
    html = _page(duplicates)
    assert '<mark class="phi" title="anonymized: NAME">[NAME]</mark>' in html
    assert "11 males [M] and 21 females [F]" in html  # brackets the anonymizer did not write
    assert "John Smith" not in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "template consumer_health_qa" in html  # provenance summary: template id
    assert re.search(r"<th>template</th><td class=\"mono\">consumer_health_qa @ [0-9a-f]{16}</td>", html)


def test_dedup_clusters_show_kept_and_dropped(duplicates):
    from instructkit.dataset.report_samples import dedup_clusters, quarantine_index

    index = quarantine_index(duplicates / "quarantine.jsonl")
    clusters, n_clusters, n_dropped = dedup_clusters(duplicates, index, 12)
    assert n_clusters == 1 and n_dropped == 3
    (c,) = clusters
    assert c["size"] == 4 and c["kept"]["id"] == c["kept_id"] and len(c["dropped"]) == 3
    assert all(d["duplicate_of"] == c["kept_id"] for d in c["dropped"])
    html = _page(duplicates)
    assert html.count('class="pair"') == 3 and "3 duplicates were dropped in favour of 1 kept record." in html


def test_quarantine_is_embedded_whole_or_sampled_by_stage_and_reason(duplicates):
    html = _page(duplicates)
    n = sum(1 for ln in (duplicates / "quarantine.jsonl").read_text().splitlines() if ln.strip())
    assert f"All {n} entries of quarantine.jsonl are here" in html
    assert html.count('class="item" tabindex="-1" data-stage=') == n
    small = _page(duplicates, max_quarantine=1)
    assert "a sample of 1 of the" in small
    none = _page(duplicates, quarantine_texts=False)
    assert "left out of this page" in none and 'data-reason="duplicate_' not in none
    assert 'class="pair"' not in none and "3 duplicates were dropped" in none


def test_stratified_samples_cover_every_stratum():
    import pyarrow as pa

    from instructkit.dataset.report_samples import _share, sample_quarantine, sample_rows

    tasks = ["a"] * 900 + ["b"] * 90 + ["c"] * 10
    table = pa.table({"row": pa.array(range(1000), pa.int64()), "task": tasks, "method": ["template"] * 1000,
                      "source": ["s"] * 1000})
    rows = sample_rows(table, 60)
    got = Counter(tasks[r] for r in rows)
    assert len(rows) == 60 and got == {"a": 25, "b": 25, "c": 10}
    assert sample_rows(table, 5000) == list(range(1000))
    assert _share({"x": 3, "y": 100}, 10) == {"x": 3, "y": 7}
    q = pa.table({"stage": ["dedup"] * 50 + ["validate.length"] * 3, "reason": ["duplicate_near"] * 50 + ["too_long"] * 3})
    lines = sample_quarantine(q, 10)
    assert len(lines) == 10 and {50, 51, 52} <= set(lines)


def test_report_of_a_large_folder_embeds_a_sample(tmp_path, quickstart):
    """Beyond --records, the page embeds a stratified sample and says so; the counts stay whole."""
    html = _page(quickstart, max_records=10)
    assert "A sample of 10 of the 51 records" in html
    assert html.count('class="item rec"') == 10
    assert len(set(re.findall(r'class="item rec" tabindex="-1" data-task="([a-z_]+)"', html))) == 7
    assert _fact(html, "records") == 51


def test_cli_report(quickstart, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "page.html"
    r = subprocess.run([sys.executable, "-m", "instructkit", "report", str(quickstart), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and str(out) in r.stdout
    bad = subprocess.run([sys.executable, "-m", "instructkit", "report", str(tmp_path / "nothing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "folder not found" in bad.stderr


def test_write_report_is_public():
    import instructkit

    assert "write_report" in instructkit.__all__
    assert instructkit.write_report.__module__ == "instructkit.dataset.report"


def test_retrieved_passages_and_a_folder_without_manifest(tmp_path):
    """A rag record shows its chunks with their text; a folder with data but no manifest
    still gets a page, whose gates say what is missing."""
    rec = {"id": "0" * 24, "task": "guideline_qa", "method": "rag",
           "instruction": "What does the guideline recommend for adults?", "input": "",
           "output": "Yearly influenza vaccination [1].", "messages": [],
           "source": {"name": "guides", "license": "LicenseRef-US-Public-Domain", "record_id": "g1"},
           "provenance": {"builder": "rag", "seed": 1, "prompt_id": "rag/guideline_qa", "prompt_hash": "ef" * 8,
                          "model": "SmolLM2", "provider": "llama.cpp", "chunk_ids": ["doc1#3"]},
           "context": [{"chunk_id": "doc1#3", "doc_id": "doc1", "title": "Influenza guidance",
                        "url": "javascript:alert(1)",
                        "section": "Adults", "score": 0.83,
                        "text": "Routine annual influenza vaccination is recommended for all adults."}]}
    _folder(tmp_path / "rag", [rec], manifest=False)
    html = _page(tmp_path / "rag")
    assert "doc1#3" in html and "Routine annual influenza vaccination is recommended" in html
    assert "Influenza guidance" in html and "score 0.830" in html
    assert 'href="javascript:' not in html  # only http(s) addresses become links
    assert "prompt</th><td class=\"mono\">rag/guideline_qa @ efefefefefefefef" in html
    assert "SmolLM2 (llama.cpp)" in html
    assert "manifest.json is missing" in html and _fact(html, "records") == 1


def _folder(out, records, manifest=True):
    """A complete dataset folder holding ``records`` (with a manifest of their counts, or none)."""
    from instructkit.dataset.writer import DatasetWriter

    with DatasetWriter(out, formats=[]) as w:
        shard = w.shard_writer()
        shard.write(records)
        hashes = w.assemble()
        w.commit({"records": shard.counts.records, "counts": shard.counts.as_dict(),
                  "data_files": hashes}, write_manifest=manifest)


def test_quarantine_index_survives_unreadable_lines(tmp_path):
    from instructkit.dataset.report_samples import iter_quarantine, quarantine_index

    q = tmp_path / "quarantine.jsonl"
    q.write_text('{"stage": "validate.length", "reason": "too_long", "record_id": "a"}\n'
                 'not json at all\n\n'
                 '{"stage": "dedup", "reason": "duplicate_near", "record_id": "b", "duplicate_of": "c", '
                 '"similarity": 1}\n', encoding="utf-8")
    index = quarantine_index(q)
    assert index.column("reason").to_pylist() == ["too_long", "unreadable quarantine line", "duplicate_near"]
    assert index.column("similarity").to_pylist() == [None, None, 1.0]
    assert [e["_line"] for e in iter_quarantine(q, {0, 2})] == [0, 2]
    assert [e["record_id"] for e in iter_quarantine(q, {2})] == ["b"]


def test_an_empty_dataset_gets_a_page(tmp_path):
    _folder(tmp_path / "empty", [])
    html = _page(tmp_path / "empty")
    assert _fact(html, "records") == 0 and "No records." in html
