"""The semantic section of bench/dedup.py: planted paraphrase pairs, every embedder backend.

Base documents are real distinct texts from ../shared/data (MedQuAD answers, PubMedQA
contexts and long answers; IU X-ray findings are left out: their boilerplate makes real
semantic duplicates that would blur precision). Natural near-duplicates are removed first.
A seeded share of them gets a planted paraphrase, made by rules that keep the meaning and
change the wording: synonyms and abbreviations swapped, sentences reordered, numbers
written as words or digits, discourse fillers added, and one sentence in four left out. The paraphrases share
few enough words with their originals that MinHash near-dedup (Jaccard 0.7) misses most of
them: only meaning finds them.

Two corpora are made from disjoint base documents: TUNING (used to choose each
backend's best-F1 threshold and the static candidate threshold) and HELD-OUT (used for
nothing but the report). Printed per method on both: records/s (embedding + FAISS range
search), and pair recall / precision (a found pair is correct when it joins a document and
its own paraphrase), at the default threshold and at the threshold chosen on TUNING.

``static candidates -> MiniLM``: static vectors find candidate pairs at a low threshold
(chosen on TUNING so that it keeps >= 99% of the pairs MiniLM itself finds); only the
records in a candidate pair are embedded with MiniLM (onnx-int8, the auto backend), and a
pair is kept when its MiniLM cosine reaches the threshold.
"""

from __future__ import annotations

import random
import re
import time

import numpy as np

# meaning-preserving swaps (both directions are used); general, clinical and abbreviations
SYNONYMS = [
    ("doctor", "physician"), ("doctors", "physicians"), ("medicine", "medication"),
    ("medicines", "medications"), ("illness", "disease"), ("illnesses", "diseases"),
    ("people", "individuals"), ("patients", "people with the condition"), ("children", "kids"),
    ("begin", "start"), ("begins", "starts"), ("help", "assist"), ("helps", "assists"),
    ("use", "utilize"), ("used", "utilized"), ("uses", "utilizes"), ("often", "frequently"),
    ("usually", "typically"), ("many", "numerous"), ("large", "big"), ("small", "little"),
    ("about", "approximately"), ("show", "demonstrate"), ("shows", "demonstrates"),
    ("showed", "demonstrated"), ("find", "identify"), ("found", "identified"),
    ("need", "require"), ("needs", "requires"), ("needed", "required"), ("cause", "lead to"),
    ("causes", "leads to"), ("caused", "led to"), ("because", "since"), ("however", "but"),
    ("also", "additionally"), ("may", "might"), ("can", "is able to"), ("most", "the majority of"),
    ("rare", "uncommon"), ("common", "frequent"), ("serious", "severe"), ("test", "exam"),
    ("tests", "exams"), ("treatment", "therapy"), ("treatments", "therapies"), ("treat", "manage"),
    ("symptoms", "signs"), ("pain", "discomfort"), ("stomach", "belly"), ("kidney", "renal"),
    ("heart attack", "myocardial infarction"), ("high blood pressure", "hypertension"),
    ("blood pressure", "BP"), ("magnetic resonance imaging", "MRI"),
    ("computed tomography", "CT"), ("study", "trial"), ("studies", "trials"),
    ("increase", "rise"), ("increased", "elevated"), ("decrease", "reduction"),
    ("decreased", "reduced"), ("significant", "notable"), ("significantly", "markedly"),
    ("result", "outcome"), ("results", "outcomes"), ("important", "key"), ("risk", "likelihood"),
    ("whether", "if"), ("aim", "goal"), ("purpose", "objective"), ("method", "approach"),
    ("methods", "approaches"), ("compared with", "relative to"), ("associated with", "linked to"),
    ("before", "prior to"), ("after", "following"), ("during", "throughout"),
    ("however,", "nevertheless,"), ("therefore", "thus"), ("get", "obtain"), ("gets", "obtains"),
    ("check", "examine"), ("checked", "examined"), ("make", "produce"), ("makes", "produces"),
    ("cells", "cell populations"), ("body", "organism"), ("women", "females"), ("men", "males"),
    ("older", "elderly"), ("young", "youthful"), ("quickly", "rapidly"), ("slowly", "gradually"),
    ("worse", "more severe"), ("better", "improved"), ("problem", "issue"), ("problems", "issues"),
]
NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
           "7": "seven", "8": "eight", "9": "nine", "10": "ten"}
FILLERS = ["In short, ", "Put simply, ", "In other words, ", "Notably, ", "To summarise, ", "Overall, "]
_SWAP = {a: b for a, b in SYNONYMS} | {b: a for a, b in SYNONYMS} | NUMBERS | {v: k for k, v in NUMBERS.items()}
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _SWAP), key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)
_SENT = re.compile(r"(?<=[.!?])\s+")


def paraphrase(text: str, rng: random.Random, swap_rate: float) -> str:
    def swap(m: re.Match) -> str:
        w = m.group(0)
        if rng.random() >= swap_rate:
            return w
        new = _SWAP.get(w.lower(), w)
        return new[:1].upper() + new[1:] if w[:1].isupper() else new

    sents = [s for s in _SENT.split(text.strip()) if s]
    # a long text loses a sentence or two: most of the meaning stays, the wording thins
    for _ in range(len(sents) // 4):
        if len(sents) > 2:
            del sents[rng.randrange(1, len(sents))]
    sents = [_SWAP_RE.sub(swap, s) for s in sents]
    if len(sents) > 2:  # move a block of sentences: the same content, another order
        cut = rng.randrange(1, len(sents))
        sents = sents[cut:] + sents[:cut]
    if sents and rng.random() < 0.5:
        s0 = sents[0]
        sents[0] = rng.choice(FILLERS) + s0[:1].lower() + s0[1:]
    return " ".join(sents)


def word_jaccard(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


def make_corpus(docs: list[str], n_base: int, share: float, seed: int) -> dict:
    rng = random.Random(seed)
    base = docs[:n_base]
    texts, family = list(base), list(range(len(base)))
    for b in rng.sample(range(len(base)), int(len(base) * share)):
        texts.append(paraphrase(base[b], rng, rng.uniform(0.7, 1.0)))
        family.append(b)
    order = list(range(len(texts)))
    rng.shuffle(order)
    texts = [texts[i] for i in order]
    family = [family[i] for i in order]
    planted = set()
    first: dict[int, int] = {}
    for i, f in enumerate(family):
        if f in first:
            planted.add((first[f], i))
        else:
            first[f] = i
    jac = [word_jaccard(texts[a], texts[b]) for a, b in planted]
    return {"texts": texts, "family": family, "planted": planted,
            "jaccard_median": float(np.median(jac)) if jac else 0.0,
            "jaccard_over_07": float(np.mean([j >= 0.7 for j in jac])) if jac else 0.0}


def found_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    from instructkit.steps.dedup.semantic import semantic_pairs

    return semantic_pairs(np.ascontiguousarray(vectors, np.float32), np.arange(len(vectors)), threshold)


def score(pairs: np.ndarray, corpus: dict) -> tuple[float, float, int]:
    fam = corpus["family"]
    got = {(int(a), int(b)) for a, b in pairs}
    correct = sum(fam[a] == fam[b] for a, b in got)
    recall = len(got & corpus["planted"]) / max(1, len(corpus["planted"]))
    precision = correct / max(1, len(got))
    return recall, precision, len(got)


def best_f1_threshold(vectors: np.ndarray, corpus: dict, lo: float = 0.5) -> float:
    pairs, sims = found_pairs(vectors, lo)
    best, best_t = -1.0, lo
    for t in np.arange(lo, 1.0, 0.01):
        r, p, _ = score(pairs[sims >= t], corpus)
        f1 = 2 * r * p / max(1e-9, r + p)
        if f1 > best:
            best, best_t = f1, float(round(t, 2))
    return best_t


def run(docs: list[str], *, n_base: int, share: float, seed: int, threshold: float,
        backends: list[str]) -> None:
    from instructkit.embeddings import load_embedder

    docs = list(docs)
    random.Random(seed).shuffle(docs)
    half = len(docs) // 2
    corpora = {"tune": make_corpus(docs[:half], n_base, share, seed + 1),
               "held_out": make_corpus(docs[half:], n_base, share, seed + 2)}
    for name, c in corpora.items():
        print(f"semantic {name}: {len(c['texts'])} records, {len(c['planted'])} planted paraphrase "
              f"pairs (word Jaccard median {c['jaccard_median']:.2f}; {c['jaccard_over_07']:.0%} "
              f"at >= 0.7, the near-dup threshold)")
    embedders = {b: load_embedder(backend=b) for b in backends}
    for e in embedders.values():
        e.embed(["warm up"])
    vecs: dict[str, dict[str, np.ndarray]] = {}
    secs: dict[str, dict[str, float]] = {}
    for b, e in embedders.items():
        for name, c in corpora.items():
            t = time.perf_counter()
            v = e.embed(c["texts"])
            found_pairs(v, threshold if b != "static" else 0.9)
            secs.setdefault(b, {})[name] = time.perf_counter() - t
            vecs.setdefault(b, {})[name] = v
    rows = []
    for b in backends:
        tuned = best_f1_threshold(vecs[b]["tune"], corpora["tune"])
        for label, t in ((f"{b} @ {threshold}", threshold), (f"{b} @ {tuned} (tuned)", tuned)):
            rec = {n: score(found_pairs(vecs[b][n], t)[0], corpora[n]) for n in corpora}
            rows.append((label, len(corpora["held_out"]["texts"]) / secs[b]["held_out"], rec))
    verifier = "onnx-int8" if "onnx-int8" in backends else backends[0]
    if "static" in backends:
        # candidate threshold on TUNING: keep >= 99% of the pairs the verifier finds
        v_pairs = {tuple(p) for p in found_pairs(vecs[verifier]["tune"], threshold)[0].tolist()}
        s_pairs, s_sims = found_pairs(vecs["static"]["tune"], 0.5)
        cand_t = 0.5
        for t in np.arange(0.95, 0.5, -0.01):
            kept = {tuple(p) for p in s_pairs[s_sims >= t].tolist()}
            if len(v_pairs & kept) >= 0.99 * len(v_pairs):
                cand_t = float(round(t, 2))
                break
        rec, rate = {}, 0.0
        for n, c in corpora.items():
            t0 = time.perf_counter()
            sv = embedders["static"].embed(c["texts"])
            cand, _ = found_pairs(sv, cand_t)
            need = np.unique(cand)
            mv = np.zeros((len(c["texts"]), embedders[verifier].dim), np.float32)
            if len(need):
                mv[need] = embedders[verifier].embed([c["texts"][i] for i in need])
            sims = np.einsum("ij,ij->i", mv[cand[:, 0]], mv[cand[:, 1]]) if len(cand) else np.zeros(0)
            pairs = cand[sims >= threshold]
            secs_n = time.perf_counter() - t0
            rec[n] = score(pairs, c)
            if n == "held_out":
                rate = len(c["texts"]) / secs_n
                share_embedded = len(need) / len(c["texts"])
        rows.append((f"static >= {cand_t} -> {verifier} @ {threshold}", rate, rec))
        print(f"static candidates: threshold {cand_t} (chosen on tuning); {share_embedded:.0%} of the "
              f"held-out records needed a {verifier} vector")
    stock = next((r[1] for r in rows if r[0].startswith("torch @")), rows[0][1])
    print()
    head = (f"{'method':40} {'records/s':>10} {'x torch':>8} {'recall tune':>12} {'prec tune':>10} "
            f"{'recall held':>12} {'prec held':>10}")
    print(head)
    print("-" * len(head))
    for label, rate, rec in rows:
        print(f"{label:40} {rate:>10.1f} {rate / stock:>7.1f}x {rec['tune'][0]:>12.3f} {rec['tune'][1]:>10.3f} "
              f"{rec['held_out'][0]:>12.3f} {rec['held_out'][1]:>10.3f}")
