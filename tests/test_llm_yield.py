"""LLM-built records worth training on (issue 14): extractive RAG with the round-trip check,
instruction back-translation, the model-junk filters, the keep rule reading validate and
judge scores. The builders talk HTTP to the project's fake OpenAI-compatible server
(``StubOpenAI``: runs in CI, any model name) and, in the ``llm`` tests, to the real
embedded SmolLM2-135M; retrieval and relevance use the real MiniLM embedder."""

from __future__ import annotations

import json
import re

import pytest

from conftest import card_of
from fixtures_llm import StubOpenAI
from instructkit import Quarantine, RunContext
from instructkit.records import make_record, schema_errors

pytest.importorskip("faiss", reason="needs instructkit[rag]")
pytest.importorskip("openai", reason="needs instructkit[llm]")

from instructkit.llm.capability import is_small_model, model_params  # noqa: E402
from instructkit.llm.fewshot import clean_question, load_fewshot  # noqa: E402
from instructkit.recordbuilders.rag import RagBuilder  # noqa: E402
from instructkit.recordbuilders.rag.sentences import is_verbatim, passage_sentences  # noqa: E402

SAMPLES = "pkg://samples"


def _last_user(req: dict) -> str:
    return [m for m in req["messages"] if m["role"] == "user"][-1]["content"]


def _statement(req: dict) -> str:
    text = _last_user(req)
    m = re.search(r"(?:Statement|Recommendation|Text):\s*(.*?)\n(?:Question|Topic|Case):", text, re.S)
    return m.group(1).strip() if m else text


def question_writer(req: dict) -> str:
    """A capable model's few-shot answers: a question (or topic, or case) about the text."""
    text, user = _statement(req), _last_user(req)
    words = re.findall(r"[A-Za-z][a-z]+", text)[:9]
    if user.rstrip().endswith("Topic:"):
        return " ".join(words[:5]).lower()
    if user.rstrip().endswith("Case:"):
        return (f"A 70-year-old adult asks about this: {' '.join(words).lower()}.\n"
                f"Question: What should be done for this patient?")
    return f"What does the guidance say about {' '.join(words).lower()}?"


_OPEN: list[RunContext] = []


@pytest.fixture(autouse=True)
def _close_contexts():
    """Each test's run contexts are closed after it (their LLM clients and HTTP sessions)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _ctx(server: StubOpenAI, model: str, seed: int = 3, embedder=None) -> RunContext:
    ctx = RunContext(seed=seed, recipe={"llm": {"base_url": server.base_url, "model": model, "cache": False}})
    if embedder is not None:
        ctx.shared("embedder", lambda: embedder, close=lambda _e: None)
    _OPEN.append(ctx)
    return ctx


def _rag(ctx, **kw) -> tuple[RagBuilder, Quarantine]:
    kw.setdefault("tasks", ["guideline_qa", "recommendation_summary", "guideline_adherence"])
    kw.setdefault("top_k", 3)
    b = RagBuilder([{"path": f"{SAMPLES}/guidelines", "license": "Apache-2.0"}], ctx=ctx, chunk_size=600,
                   chunk_overlap=80, min_chunk_chars=200, **kw)
    q = Quarantine()
    b.bind(q)
    return b, q


# -- small-model handling -------------------------------------------------------------------------
def test_model_size_decides_auto_mode():
    assert model_params("SmolLM2-135M-Instruct.Q4_1") == 135e6
    assert model_params("meta-llama/Llama-3.1-8B-Instruct") == 8e9
    assert model_params("gpt-4o-mini") is None
    assert is_small_model("Qwen2.5-1.5B-Instruct") and not is_small_model("meta-llama/Llama-3.1-8B-Instruct")
    assert not is_small_model("gpt-4o-mini")  # no size in the name: counted as capable

    class Embedded:
        model = "whatever"
        settings = type("S", (), {"is_embedded": True})()

    assert is_small_model(Embedded())


def test_fewshot_prompts_put_examples_as_chat_turns_and_rotate_them():
    p = load_fewshot("rag/extractive")["question"]
    msgs = p.messages(text="Hands should be cleaned before gloves are put on.")
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * len(p.examples) + ["user"]
    assert msgs[-1]["content"].endswith("Question:") and "gloves" in msgs[-1]["content"]
    last_example = [m["content"] for m in p.messages(rotate=1, text="x y z") if m["role"] == "assistant"][-1]
    assert last_example == p.examples[0]["reply"]  # rotated: another example comes last
    assert clean_question('Question: "How often should feet be examined?" The answer is yearly.') == \
        "How often should feet be examined?"
    assert clean_question("What?") is None and clean_question("Feet should be examined.") is None


def test_sentences_keep_exact_offsets_and_skip_headings():
    text = ("### When to clean hands\n\nStaff should clean their hands before touching a patient, before a\n"
            "clean procedure. Gloves do not replace hand hygiene, e.g. after touching\nbody fluids.\n\n> A note.")
    sents = passage_sentences("c1", text)
    assert [s.text for s in sents] == [
        "Staff should clean their hands before touching a patient, before a clean procedure.",
        "Gloves do not replace hand hygiene, e.g. after touching body fluids."]
    for s in sents:
        assert is_verbatim(s.text, text) and " ".join(text[s.start:s.end].split()) == s.text


# -- extractive RAG ------------------------------------------------------------------------------
def test_extractive_answers_are_verbatim_from_the_cited_passages(embedder):
    with StubOpenAI(question_writer) as server:
        b, q = _rag(_ctx(server, "SmolLM2-135M-Instruct", embedder=embedder), n=9)
        recs = list(b.build())
        assert b.mode == "extractive"  # auto: the model's name says it is small
        assert len(recs) >= 6, q.entries
        for rec in recs:
            assert schema_errors(rec) == []
            passages = {c["chunk_id"]: c["text"] for c in rec["context"]}
            assert rec["meta"]["cited_chunk_ids"] and set(rec["meta"]["cited_chunk_ids"]) <= set(passages)
            for s in rec["meta"]["answer"]["sentences"]:
                assert s["supported"] and is_verbatim(s_text := " ".join(
                    passages[s["chunk_id"]][s["start"]:s["end"]].split()), passages[s["chunk_id"]])
                assert s_text in rec["output"]
            # the whole answer is those sentences, nothing else
            assert rec["output"] == " ".join(" ".join(passages[s["chunk_id"]][s["start"]:s["end"]].split())
                                             for s in rec["meta"]["answer"]["sentences"])
            rt = rec["meta"]["answer"]["roundtrip"]
            assert 1 <= rt["rank"] <= 3 and rec["meta"]["retrieval"]["seed_chunk_id"] in \
                [c["chunk_id"] for c in rec["context"]]
            assert rec["provenance"]["prompt_chain"][0]["prompt_id"].startswith("rag/extractive/")
        assert {r["task"] for r in recs} == {"guideline_qa", "recommendation_summary", "guideline_adherence"}
        # the model was asked for short things only: no passage list, no JSON
        assert all("response_format" not in r for r in server.requests)
        assert "extractive" in card_of(b) and "Round-trip" in card_of(b)


def test_the_model_can_pick_the_answer_sentences_by_number(embedder):
    def reply(req):
        if "response_format" in req:  # the pick: numbered sentences shown, JSON answer
            assert "[1]" in _last_user(req)
            return json.dumps({"sentences": [1]})
        return question_writer(req)

    with StubOpenAI(reply) as server:
        b, q = _rag(_ctx(server, "SmolLM2-135M-Instruct", embedder=embedder), n=4, tasks=["guideline_qa"],
                    extractive={"select": "model"})
        recs = list(b.build())
        assert recs, q.entries
        for rec in recs:
            assert rec["meta"]["answer"]["select"] == "model" and len(rec["meta"]["answer"]["sentences"]) == 1
            assert all(s["supported"] for s in rec["meta"]["answer"]["sentences"])
        assert sum("response_format" in r for r in server.requests) == len(recs) + len(
            [e for e in q.entries if e["reason"] == "llm_invalid_output"])


def test_useless_questions_are_quarantined_with_their_reason(embedder):
    influenza = "Which vaccine should adults aged 65 years and older preferably receive for influenza"

    def junk(req):
        s = _statement(req)
        if "hand" in s.lower():  # names the passage (hands) but asks about another document
            return influenza + " on their hands?"
        return "What is the answer?"

    with StubOpenAI(junk) as server:
        b, q = _rag(_ctx(server, "SmolLM2-135M-Instruct", embedder=embedder), n=8, tasks=["guideline_qa"], top_k=1)
        recs = list(b.build())
        reasons = {e["reason"] for e in q.entries}
        assert "off_topic" in reasons and "roundtrip_failed" in reasons, q.entries
        failed = next(e for e in q.entries if e["reason"] == "roundtrip_failed")
        assert failed["query"].startswith(influenza) and failed["source"]["chunk_id"] not in failed["retrieved"]
        assert len(recs) + len(q.entries) == 8


def test_capable_endpoint_gets_abstractive_mode_with_round_trip(embedder):
    """Same builder settings, a model whose name says it is large: the model writes the answer
    (JSON with citations), the citation check and the round trip still hold."""
    def writer(req):
        user = _last_user(req)
        first = re.search(r"\[P1\][^\n]*\n(.*?)(?:\[P2\]|\nWrite |\nName |$)", user, re.S).group(1)
        sent = passage_sentences("x", first)[0].text
        topic = " ".join(re.findall(r"[A-Za-z][a-z]+", sent)[:6]).lower()
        return json.dumps({"question": f"What does the guideline say about {topic}?", "answer": sent,
                           "topic": topic, "summary": sent, "case": f"A 70-year-old adult: {topic}.",
                           "citations": ["P1"]})

    with StubOpenAI(writer) as server:
        b, q = _rag(_ctx(server, "meta-llama/Llama-3.1-8B-Instruct", embedder=embedder), n=6)
        recs = list(b.build())
        assert b.mode == "abstractive" and len(recs) >= 4, q.entries
        for rec in recs:
            assert rec["meta"]["answer"]["mode"] == "abstractive"
            assert rec["meta"]["answer"]["roundtrip"]["rank"] <= 3 and rec["meta"]["support"]["ok"]
        assert all("response_format" in r for r in server.requests)


def capable_model(req: dict) -> str:
    """A capable model behind an OpenAI-compatible endpoint, for every prompt the quickstart's
    LLM builders send."""
    user = _last_user(req)
    if "[P1]" in user:  # abstractive RAG: answer from passage P1, cite it
        first = re.search(r"\[P1\][^\n]*\n(.*?)(?:\[P2\]|\nWrite |\nName |$)", user, re.S).group(1)
        sent = passage_sentences("x", first)[0].text
        topic = " ".join(re.findall(r"[A-Za-z][a-z]+", sent)[:7]).lower()
        return json.dumps({"question": f"What does the guideline say about {topic}?", "answer": sent,
                           "topic": topic, "summary": sent, "case": f"A 70-year-old adult: {topic}.",
                           "citations": ["P1"]})
    if "response_format" in req and "Write Task" in user:  # Self-Instruct: a new task
        n = len(req["messages"][-1]["content"])
        return json.dumps({"instruction": f"Explain to a patient why a blood test needs {n % 7 + 4} hours "
                                          f"of fasting and what they may drink before it."})
    if "response_format" in req:  # Self-Instruct: an instance of the task
        return json.dumps({"input": "", "output": "Fasting keeps food from changing blood sugar and fat "
                                                  "levels, so the result is accurate. Plain water is fine."})
    return question_writer(req)


def test_a_capable_endpoint_runs_the_same_quickstart_recipe(embedder):
    """The quickstart's LLM builders, unchanged, against an endpoint whose model is large:
    rag runs abstractive, back-translation and Self-Instruct make records, validate keeps them."""
    from instructkit.pipeline import Pipeline
    from instructkit.recipe.load import load_recipe

    data = load_recipe("quickstart").data
    data = {**data, "builders": [b for b in data["builders"] if b["type"] != "template"],
            "stages": {"anonymize": False, "audit": False, "bias_report": False}}
    with StubOpenAI(capable_model) as server:
        data["llm"] = {"base_url": server.base_url, "model": "meta-llama/Llama-3.1-8B-Instruct", "cache": False}
        ctx = RunContext()
        ctx.shared("embedder", lambda: embedder, close=lambda _e: None)
        _OPEN.append(ctx)
        pipe = Pipeline.from_recipe(load_recipe(data), context=ctx)
        q = Quarantine()
        recs = list(pipe.records(q))
        rag = next(b for b in pipe.builders if b.method == "rag")
        assert rag.mode == "abstractive"
        by_method = {m: [r for r in recs if r["method"] == m] for m in ("rag", "synthetic")}
        assert len(by_method["rag"]) >= 5 and all(r["meta"]["answer"]["mode"] == "abstractive" for r in by_method["rag"])
        assert {r["meta"]["synthetic"]["method"] for r in by_method["synthetic"]} >= {"backtranslate"}
        assert any(r["meta"]["synthetic"]["method"] == "self_instruct" for r in by_method["synthetic"]) or \
            any(e.get("method") == "self_instruct" for e in q.entries)


# -- back-translation -----------------------------------------------------------------------------
def _bt_builder(server, model, embedder, **cfg):
    from instructkit.recipe.sources import sources_from_recipe
    from instructkit.recordbuilders.synthetic import SyntheticBuilder
    from instructkit.recordbuilders.synthetic.builder import BacktranslateConfig

    sources = sources_from_recipe({"sources": [
        {"name": "hq", "type": "jsonl", "path": f"{SAMPLES}/health_questions.jsonl", "id_field": "id",
         "license": "Apache-2.0", "citation": "instructkit samples"},
        {"name": "ra", "type": "json", "path": f"{SAMPLES}/research_abstracts.json", "license": "MIT"}]})
    ctx = _ctx(server, model, embedder=embedder)
    b = SyntheticBuilder(ctx, self_instruct=None, sources=sources, batch_size=4,
                         backtranslate=BacktranslateConfig(**{"n": 10, "sources": ["hq", "ra"], **cfg}))
    q = Quarantine()
    b.bind(q)
    return b, q


def test_backtranslation_keeps_the_source_text_licence_and_citation(embedder):
    with StubOpenAI(question_writer) as server:
        b, q = _bt_builder(server, "SmolLM2-135M-Instruct", embedder)
        recs = list(b.build())
        assert len(recs) >= 6, q.entries
        rows = {json.loads(x)["id"]: json.loads(x)["answer"] for x in
                open(b.bt.sources["hq"].path, encoding="utf-8")}
        for rec in recs:
            assert schema_errors(rec) == []
            assert rec["method"] == "synthetic" and rec["task"] == "backtranslated_qa"
            assert rec["instruction"].endswith("?") and rec["input"] == ""
            if rec["source"]["name"] == "hq":
                assert rec["output"] == " ".join(rows[rec["source"]["record_id"]].split())
                assert rec["source"]["license"] == "Apache-2.0" and rec["source"]["citation"] == "instructkit samples"
            else:
                assert rec["source"]["license"] == "MIT"
            meta = rec["meta"]["synthetic"]
            assert meta["method"] == "backtranslate" and meta["relevance"] >= 0.3 and meta["roundtrip"]["rank"] <= 3
        assert "Back-translation" in card_of(b)
        assert all(r["messages"][-1]["content"].startswith("Text: ") for r in server.requests)


def test_backtranslation_self_curation_drops_with_reasons(embedder):
    def reply(req):
        text = _statement(req).lower()
        if "pressure" in text:
            return "Does a nosebleed raise blood pressure?"  # names the text, and an example's topic
        if "vaccine" in text or "flu" in text:
            return "zzz"  # no question at all
        return "What is the answer?"  # names nothing of the text

    with StubOpenAI(reply) as server:
        b, q = _bt_builder(server, "SmolLM2-135M-Instruct", embedder, n=12)
        assert list(b.build()) == []
        reasons = {e["reason"] for e in q.entries}
        assert reasons == {"off_topic", "copies_example", "invalid_llm_output"}, q.entries
        assert b.stats.n_in == len(q.entries) >= 8  # every sampled text was tried and accounted for
        assert all(e["method"] == "backtranslate" and e["source"]["license"] for e in q.entries)


# -- the junk filters --------------------------------------------------------------------------------
def _rec(instruction, output, input="", method="synthetic", task="patient_question", meta=None):
    return make_record(task=task, method=method, instruction=instruction, input=input, output=output,
                       source={"name": "t", "license": "MIT", "record_id": instruction[:20]},
                       provenance={"builder": method, "seed": 0, "prompt_id": "x", "prompt_hash": "1" * 16},
                       meta=meta or {})


def _validate(records, config=None, ctx=None):
    from instructkit.steps.quality.validate import ValidateStage

    q = Quarantine()
    stream = iter(records)
    for s in ValidateStage.from_config(config or {}, ctx or RunContext()):
        s.bind(q)
        stream = s(stream)
    return list(stream), q.entries


ANSWER = ("Drink plenty of fluids, rest, and take paracetamol for fever or aches. See a doctor if you "
          "have trouble breathing or the fever lasts more than three days.")

JUNK = [
    ("issue_task_range", _rec("Tasks {task1} to Task4 can be combined in a way that combines multiple tasks.",
                              "This is an example of a fictional task. This task combines three previous examples."),
     None, None),
    ("issue_task_list", _rec("Task 1: Turn the nursing handover notes into a short SBAR summary. Task 2: List the "
                             "follow-up actions. Task 3: Summarise the discharge plan.", ANSWER, input="Task: Task 1"),
     "validate.task_list", "task_list"),
    ("brace_slot", _rec("Explain to the patient how to manage {condition} at home.", ANSWER),
     "validate.placeholders", "placeholder"),
    ("angle_slot", _rec("Write a reply to <patient name> about their flu symptoms.", ANSWER),
     "validate.placeholders", "placeholder"),
    ("square_slot", _rec("How should a patient with the flu be cared for at home?", "Take [dose] of paracetamol "
                         "every six hours and drink plenty of fluids while you rest."),
     "validate.placeholders", "placeholder"),
    ("label_input", _rec("Give advice to a patient with the flu on how to feel better.", ANSWER, input="Task: Task 1"),
     "validate.label_input", "input_only_label"),
    ("none_input", _rec("Give advice to a patient with the flu on how to feel better.", ANSWER, input="Input: none"),
     "validate.label_input", "input_only_label"),
    ("meta_here_is", _rec("Here is a new task for a medical assistant about influenza care.", ANSWER),
     "validate.model_artefacts", "meta_text"),
    ("short_loop", _rec("How should flu be treated at home?", "What is the answer? What is the answer? "
                        "What is the answer?"), "validate.repetition", "repetition"),
]


@pytest.mark.parametrize("case,record,stage,reason", JUNK, ids=[j[0] for j in JUNK])
def test_model_junk_is_quarantined_with_a_reason(case, record, stage, reason):
    kept, entries = _validate([record], {"filters": {"relevance": False}})
    assert not kept and len(entries) == 1, entries
    if stage:
        assert (entries[0]["stage"], entries[0]["reason"]) == (stage, reason)


CLEAN = [
    ("anonymizer_tags", _rec("How should [NAME] care for the flu at home?", "[NAME] should " + ANSWER[0].lower() + ANSWER[1:],
                             input="<PERSON> called on [DATE].")),
    ("html", _rec("How should the flu be cared for at home?", "Rest at home.<br>" + ANSWER)),
    ("short_field_value", _rec("List the abnormality labels of this chest X-ray report.", "normal",
                               input="Findings: normal", task="report_labeling")),
    ("numbered_steps", _rec("Explain the two steps of hand washing: 1) wet and soap, 2) rinse and dry.", ANSWER)),
    ("repeated_numbers", _rec("What does the table show?", "The values were 0 0 0 0 at baseline and rose after "
                              "treatment in every group that was studied.")),
]


@pytest.mark.parametrize("case,record", CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_look_alikes_pass_the_junk_filters(case, record):
    cfg = {"filters": {"relevance": False}, "tasks": {"report_labeling": {"label_set": False}}}
    kept, entries = _validate([record], cfg)
    assert kept and not entries, entries


def test_mcq_answer_that_is_an_option_is_not_a_copy_of_the_input():
    options = {"A": "Autosomal dominant polycystic kidney disease with bilateral flank masses",
               "B": "Renal cell carcinoma of the left kidney with venous extension",
               "C": "Simple renal cysts", "D": "Medullary sponge kidney"}
    inp = "A 45-year-old man has hypertension and flank pain. What is the diagnosis?\n\n" + \
        "\n".join(f"{k}. {v}" for k, v in options.items())
    rec = _rec("Answer the following multiple-choice medical question.", f"A. {options['A']}", input=inp,
               method="template", task="multiple_choice_qa", meta={"options": options, "answer_key": "A"})
    kept, entries = _validate([rec])
    assert kept and not entries, entries
    copied = _rec("Answer the following multiple-choice medical question.", inp, input=inp, method="template",
                  task="multiple_choice_qa", meta={"options": options, "answer_key": "A"})
    assert _validate([copied])[1][0]["reason"] == "copies_input"


def test_relevance_drops_an_answer_to_another_question_and_scores_the_rest(embedder):
    ctx = RunContext()
    ctx.shared("embedder", lambda: embedder, close=lambda _e: None)
    good = _rec("How should the flu be cared for at home?", ANSWER)
    off = _rec("How should the flu be cared for at home?",
               "The invoice lists twelve boxes of printer paper and three staplers for the accounts office.")
    template = _rec("How should the flu be cared for at home?",
                    "The invoice lists twelve boxes of printer paper for the office.", method="template")
    kept, entries = _validate([good, off, template], ctx=ctx)
    assert [e["reason"] for e in entries] == ["low_relevance"] and entries[0]["record_id"] == off["id"]
    by_id = {r["id"]: r for r in kept}
    assert by_id[good["id"]]["meta"]["quality"]["relevance"] > 0.3
    assert "quality" not in by_id[template["id"]]["meta"]  # template records are not scored by default


# -- dedup keep rule, stage order, judge -------------------------------------------------------------
def test_validate_and_judge_run_before_dedup_so_the_keep_rule_reads_their_scores():
    from instructkit.steps.dedup.keep import DEFAULT_KEEP_ORDER, KeepRule, judge_score, relevance
    from instructkit.registry import STAGE_ORDER

    assert STAGE_ORDER.index("validate") < STAGE_ORDER.index("judge") < STAGE_ORDER.index("dedup")
    assert DEFAULT_KEEP_ORDER[:3] == ("method", "judge_score", "relevance")
    judged = {"meta": {"judge": {"overall": 4.5}, "quality": {"relevance": 0.61}}}
    assert judge_score(judged) == 4.5 and relevance(judged) == 0.61
    import numpy as np

    rule = KeepRule()
    # same method: the higher judge score wins over the longer output; then relevance
    ranks = rule.ranks(np.array([0, 0, 0]), np.array([100, 10, 10]),
                       np.array([[3.0, 0.9], [4.5, 0.2], [np.nan, 0.8]]), ["a", "b", "c"])
    assert list(np.argsort(ranks)) == [1, 0, 2]
    ranks = rule.ranks(np.array([0, 0]), np.array([100, 10]), np.array([[np.nan, 0.3], [np.nan, 0.7]]), ["a", "b"])
    assert list(np.argsort(ranks)) == [1, 0]


# -- the real embedded model ---------------------------------------------------------------------------
@pytest.mark.llm
@pytest.mark.timeout(900)
def test_embedded_model_makes_grounded_rag_and_backtranslated_records(llm_server, embedder):
    class Server:
        base_url = llm_server.base_url

    b, q = _rag(_ctx(Server, llm_server.model, embedder=embedder), n=6, tasks=["guideline_qa"])
    recs = list(b.build())
    assert b.mode == "extractive"
    assert recs, q.entries
    for rec in recs:
        for s in rec["meta"]["answer"]["sentences"]:
            passage = next(c["text"] for c in rec["context"] if c["chunk_id"] == s["chunk_id"])
            assert s["supported"] and is_verbatim(" ".join(passage[s["start"]:s["end"]].split()), passage)
    bt, q2 = _bt_builder(Server, llm_server.model, embedder, n=6)
    made = list(bt.build())
    assert made, q2.entries
    assert all(r["instruction"].endswith(("?", ".")) and r["provenance"]["model"] == llm_server.model for r in made)
