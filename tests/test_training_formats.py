"""The training exports are in the formats the trainers document (issue 18, item 3).

- TRL ``SFTTrainer`` (docs: "Dataset formats and types"): conversational language modeling is
  ``{"messages": [{"role": ..., "content": ...}, ...]}`` with roles system, user, assistant;
  TRL applies the tokenizer's chat template. ``{"conversations": [{"from", "value"}]}`` is
  converted by ``trl.data_utils.maybe_convert_to_chatml``.
- axolotl ``type: chat_template`` (docs/dataset-formats/conversation.qmd and the dataset
  config schema): ``field_messages`` defaults to ``messages`` and ``message_property_mappings``
  to ``{role: role, content: content}``; roles map ``user: [human, user]``,
  ``assistant: [gpt, assistant]``, ``system: [system]``. The ShareGPT export loads with
  ``field_messages: conversations`` and ``message_property_mappings: {role: from, content: value}``.
- axolotl ``type: alpaca`` (docs/dataset-formats/inst_tune.qmd): ``{"instruction", "input"
  (optional), "output"}``.

The checks are written from those documents (axolotl is not installed); TRL's own format
helpers and the real SmolLM2 chat template run when they are installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructkit import build, read_dataset

from conftest import template_quickstart

#: axolotl's default role mapping (dataset config ``roles``)
AXOLOTL_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
                 "system": "system", "tool": "tool"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    r = template_quickstart()
    r["stages"] = {"anonymize": False, "audit": False}
    r["output"] = {"formats": ["messages", "alpaca", "sharegpt"],
                   "system_prompt": "You label and summarise clinical text for research.",
                   "phases": [{"name": "labeling", "task": "report_labeling"}, {"name": "rest"}]}
    out = tmp_path_factory.mktemp("formats") / "out"
    build(r, out, quiet=True)
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _export_files(out: Path, fmt: str) -> list[Path]:
    return [out / "exports" / f"{fmt}.jsonl", *sorted((out / "exports").glob(f"phase-*/{fmt}.jsonl"))]


def _check_conversation(msgs: list[dict]) -> None:
    assert isinstance(msgs, list) and len(msgs) >= 2
    for m in msgs:
        assert set(m) == {"role", "content"}
        assert isinstance(m["role"], str) and isinstance(m["content"], str) and m["content"].strip()
    roles = [m["role"] for m in msgs]
    assert set(roles) <= {"system", "user", "assistant"}
    body = roles[1:] if roles[0] == "system" else roles
    assert "system" not in body, "a system turn comes first or not at all"
    assert body[0] == "user" and body[-1] == "assistant", "the answer is the last turn, trained on"
    assert all(a != b for a, b in zip(body, body[1:])), "user and assistant turns alternate"


def test_messages_export_is_trl_and_axolotl_conversational(built):
    for path in _export_files(built, "messages"):
        rows = _rows(path)
        assert rows, path
        for row in rows:
            assert set(row) == {"id", "messages"}
            _check_conversation(row["messages"])  # TRL; axolotl chat_template with its defaults
            assert [AXOLOTL_ROLES[m["role"]] for m in row["messages"]] == [m["role"] for m in row["messages"]]
    first = _rows(built / "exports" / "messages.jsonl")[0]["messages"]
    assert first[0] == {"role": "system", "content": "You label and summarise clinical text for research."}


def test_sharegpt_export_maps_onto_the_messages_export(built):
    by_id = {r["id"]: r["messages"] for r in _rows(built / "exports" / "messages.jsonl")}
    for path in _export_files(built, "sharegpt"):
        for row in _rows(path):
            assert set(row) == {"id", "conversations"}
            for turn in row["conversations"]:
                assert set(turn) == {"from", "value"} and turn["from"] in {"system", "human", "gpt"}
            # axolotl: field_messages: conversations, message_property_mappings {role: from, content: value}
            mapped = [{"role": AXOLOTL_ROLES[t["from"]], "content": t["value"]} for t in row["conversations"]]
            assert mapped == by_id[row["id"]]


def test_alpaca_export_has_axolotls_alpaca_fields(built):
    recs = {r["id"]: r for r in read_dataset(built)}
    for path in _export_files(built, "alpaca"):
        for row in _rows(path):
            assert set(row) == {"id", "instruction", "input", "output"}
            assert all(isinstance(row[k], str) for k in ("instruction", "input", "output"))
            assert row["instruction"].strip() and row["output"].strip()
            rec = recs[row["id"]]
            assert (row["instruction"], row["input"], row["output"]) == (rec["instruction"], rec["input"] or "", rec["output"])


def test_exports_load_with_datasets_json_as_trainers_read_them(built, tmp_path):
    import datasets

    ds = datasets.load_dataset("json", data_files=str(built / "exports" / "messages.jsonl"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.column_names == ["id", "messages"]
    turn = ds.features["messages"].feature  # a list of {role, content} strings, as on the Hub
    assert {k: v.dtype for k, v in turn.items()} == {"role": "string", "content": "string"}
    assert ds[0]["messages"][-1]["role"] == "assistant"


def test_trl_recognises_and_converts_the_exports(built):
    trl_data = pytest.importorskip("trl.data_utils", reason="TRL is not installed (pip install trl)")
    by_id = {r["id"]: r for r in _rows(built / "exports" / "messages.jsonl")}
    for row in by_id.values():
        assert trl_data.is_conversational(row)
    for row in _rows(built / "exports" / "sharegpt.jsonl"):
        assert trl_data.is_conversational_from_value(row)
        # TRL renames from/value to role/content but keeps ShareGPT's role names (human, gpt):
        # for TRL the messages export is the one to use (the README says so)
        converted = trl_data.maybe_convert_to_chatml(json.loads(json.dumps(row)))["messages"]
        assert [m["content"] for m in converted] == [m["content"] for m in by_id[row["id"]]["messages"]]
        assert {m["role"] for m in converted} <= {"system", "human", "gpt"}


def test_the_real_smollm2_chat_template_renders_every_conversation(built):
    pytest.importorskip("gguf", reason="the gguf package is not installed (pip install 'instructkit[downstream]')")
    trl_data = pytest.importorskip("trl.data_utils", reason="TRL is not installed (pip install trl)")
    from fixtures_downstream import smollm2_tokenizer

    tok = smollm2_tokenizer()
    for row in _rows(built / "exports" / "messages.jsonl"):
        text = trl_data.apply_chat_template({"messages": row["messages"]}, tok)["text"]
        for m in row["messages"]:
            assert m["content"] in text
        assert text.rstrip().endswith(row["messages"][-1]["content"] + tok.eos_token)
