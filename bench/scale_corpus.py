"""Question-answer rows for scale runs, made from the real text in ../shared/data.

Every row is a new combination, not a repeated row: the question is a real MedQuAD question
(or one made of a PubMedQA title) put in one of several phrasings with its topic; the answer
is a real answer or context, cut to a random run of its sentences and followed by 0-3 real
sentences from other documents. Into the stream we plant

- exact duplicates (5%): an earlier row again under a new id, verbatim or with case and
  punctuation changes in the answer only;
- near duplicates (10%): an earlier answer with 2-12% of its words substituted, inserted or
  deleted.

Rows are written as JSON lines (``id, question, answer``) while they are made, so a million
rows never sit in memory. ``python bench/scale_corpus.py N OUT.jsonl``.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))

PHRASINGS = ("{q}", "{q} Please explain.", "Could you tell me: {q}", "I was wondering, {q_lower}",
             "{q} (asked about {topic})", "About {topic}: {q}", "My doctor mentioned {topic}. {q}",
             "Question from a patient: {q}", "{q} I would like a plain answer.", "Regarding {topic}, {q_lower}")
_PUNCT = ",.;:!?"


def real_pairs() -> list[tuple[str, str, str]]:
    """(topic, question, answer) from MedQuAD and PubMedQA."""
    out: list[tuple[str, str, str]] = []
    for f in sorted((DATA / "medquad").glob("*/*.xml")):
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError:
            continue
        topic = (root.findtext("Focus") or "this condition").strip()
        for qa in root.iter("QAPair"):
            q, a = (qa.findtext("Question") or "").strip(), (qa.findtext("Answer") or "").strip()
            if q and len(a.split()) >= 12:
                out.append((topic, q, a))
    pq = DATA / "pubmedqa" / "ori_pqal.json"
    if pq.is_file():
        for item in json.loads(pq.read_text(encoding="utf-8")).values():
            q = (item.get("QUESTION") or "").strip()
            a = " ".join(item.get("CONTEXTS") or [])
            if q and len(a.split()) >= 12:
                out.append(((item.get("MESHES") or ["this study"])[0], q, a))
    if not out:
        raise SystemExit(f"no MedQuAD or PubMedQA text under {DATA} (see ../shared/data/README.md)")
    return out


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def _cosmetic(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    for i in range(len(out)):
        if rng.random() < rate:
            op = rng.randrange(3)
            out[i] = out[i].upper() if op == 0 else out[i].lower() if op == 1 else out[i] + rng.choice(_PUNCT)
    return out


def _edit(words: list[str], rate: float, vocab: list[str], rng: random.Random) -> list[str]:
    """A near duplicate: substitutions, insertions and deletions, as bench/dedup.py plants them."""
    from dedup import edit  # bench/ is on the path of every bench script

    return edit(words, rate, vocab, rng)[0]


def rows(n: int, seed: int = 0, exact: float = 0.05, near: float = 0.10,
         max_answer_words: int = 220) -> Iterator[dict[str, str]]:
    """``n`` rows: ``id``, ``question``, ``answer`` and ``kind`` (base / exact / near)."""
    rng = random.Random(seed)
    pairs = real_pairs()
    pool = [s for _, _, a in pairs for s in _sentences(a) if len(s.split()) >= 5]
    vocab = sorted({w for _, _, a in pairs[:3000] for w in re.findall(r"[A-Za-z]{3,}", a)})
    recent: list[tuple[str, str]] = []  # answers to copy from (a bounded window: memory stays flat)
    for i in range(n):
        topic, q, a = pairs[rng.randrange(len(pairs))]
        phr = rng.choice(PHRASINGS)
        question = phr.format(q=q, q_lower=q[:1].lower() + q[1:], topic=topic)
        r = rng.random()
        if recent and r < exact:  # the same row again (another id), maybe with case/punctuation changes
            question, src = rng.choice(recent)
            answer = src if rng.random() < 0.5 else " ".join(_cosmetic(src.split(), rng.uniform(0.02, 0.1), rng))
            kind = "exact"
        elif recent and r < exact + near:
            answer = " ".join(_edit(rng.choice(recent)[1].split(), rng.uniform(0.02, 0.12), vocab, rng))
            kind = "near"
        else:
            sents = _sentences(a)
            start = rng.randrange(len(sents))
            take = sents[start:start + rng.randint(2, 8)] + rng.sample(pool, rng.randint(0, 3))
            answer = " ".join(" ".join(take).split()[:max_answer_words])
            kind = "base"
            recent.append((question, answer))
            if len(recent) > 5000:
                recent.pop(rng.randrange(len(recent)))
        yield {"id": f"s{seed}-{i:08d}", "question": question, "answer": answer, "kind": kind}


def write_rows(path: str | Path, n: int, seed: int = 0) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows(n, seed):
            fh.write(json.dumps(row) + "\n")
    return path


if __name__ == "__main__":
    write_rows(sys.argv[2], int(sys.argv[1]))
