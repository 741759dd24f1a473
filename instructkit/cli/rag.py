"""``instructkit index`` and ``instructkit search``: build/update a retrieval index over
guideline documents and query it from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from instructkit.cli.app import echo

from instructkit._exceptions import InstructkitError, SourceError


def register(app: typer.Typer) -> None:
    app.command("index")(index_command)
    app.command("search")(search_command)


def index_command(
    docs: List[Path] = typer.Argument(..., help="Document files or folders (.md .txt .html .pdf, or .json {url: text})."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder (created, or updated incrementally)."),
    chunk_size: int = typer.Option(1000, "--chunk-size", help="Characters per chunk."),
    overlap: int = typer.Option(150, "--overlap", help="Characters shared by neighbouring chunks."),
    model: Optional[str] = typer.Option(None, "--model", help="sentence-transformers model folder or name (default: all-MiniLM-L6-v2, offline)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Embedder backend: auto, torch, onnx, onnx-int8 or static (default: the index's own, else auto). With two_stage retrieval: the re-ranker's (the index holds static vectors)."),
    retrieval: Optional[str] = typer.Option(None, "--retrieval", help="two_stage (static vectors indexed, MiniLM re-ranks at query time; the default), hybrid or dense (every chunk embedded with --backend). Default: the index's own."),
    format: Optional[str] = typer.Option(None, "--format", help="Force a format: markdown, text, html, pdf, json_url_text."),
    license: str = typer.Option("unknown", "--license", help="License of documents that do not declare one."),
    index_type: str = typer.Option("auto", "--index-type", help="auto, flat (exact), hnsw or ivf (approximate)."),
    keep_missing: bool = typer.Option(False, "--keep-missing", help="Keep indexed documents that are not among DOCS (default: remove them)."),
) -> None:
    """Index DOCS into OUT: chunk, embed and add to a FAISS index. Unchanged documents
    (same content hash) are not re-embedded; changed ones are replaced."""
    from instructkit.cli.app import quiet
    from instructkit.embeddings import load_embedder
    from instructkit.recordbuilders.rag.chunking import ChunkSettings
    from instructkit.recordbuilders.rag.documents import load_documents
    from instructkit.recordbuilders.rag.index import RagIndex

    from instructkit.embedding_backends import BACKENDS
    from instructkit.recordbuilders.rag.index import DEFAULT_RETRIEVAL, RETRIEVAL_MODES

    if backend is not None and backend not in ("auto", *BACKENDS):
        raise typer.BadParameter(f"one of auto, {', '.join(BACKENDS)}", param_hint="--backend")
    if retrieval is not None and retrieval not in RETRIEVAL_MODES:
        raise typer.BadParameter(f"one of {', '.join(RETRIEVAL_MODES)}", param_hint="--retrieval")
    try:
        settings = ChunkSettings(chunk_size, overlap)
    except ValueError as exc:
        raise InstructkitError(f"--chunk-size/--overlap: {exc}") from None
    from instructkit.dataset.outputs import check_index_out

    # the index is updated in place: never into someone's folder, nor where DOCS are read
    check_index_out(out, [(f"DOCS entry {p}", p) for p in docs])
    documents = []
    for p in docs:
        documents += load_documents(p, format=format, license=license)
    saved = json.loads((out / "meta.json").read_text(encoding="utf-8")) if RagIndex.exists(out) else {}
    # indexes written before two_stage existed hold the vectors of their own backend
    mode = retrieval or saved.get("retrieval") or ("hybrid" if saved else DEFAULT_RETRIEVAL)
    model = model or saved.get("model")
    rerank_backend = backend or saved.get("reranker_backend") or "auto"
    embedder = None
    if mode == "two_stage" and rerank_backend == "static":
        mode = "hybrid"  # nothing better to re-rank with: the static vectors alone
    if mode == "two_stage":
        from instructkit._exceptions import MissingExtraError

        try:
            embedder = load_embedder(model, backend="static")
        except MissingExtraError as exc:
            echo(f"two_stage retrieval needs the static embedder ({exc}); indexing for hybrid retrieval")
            mode = "hybrid"
    if embedder is None:
        if not backend and saved:  # the index's own: its re-ranker's if it was two_stage
            backend = saved.get("reranker_backend") if saved.get("retrieval") == "two_stage" \
                else saved.get("backend", "torch")
        embedder = load_embedder(model, backend=backend)
    kw = dict(retrieval=mode, reranker_backend=rerank_backend if mode == "two_stage" else None)
    if saved:
        index = RagIndex.open(out, embedder, settings=settings, index_type=index_type, **kw)
    else:
        index = RagIndex(embedder, settings, index_type, out, **kw)
    report = index.update(documents, prune=not keep_missing, quiet=quiet())
    index.save(out)
    if not quiet():
        rate = report.chunks_embedded / report.embed_seconds if report.embed_seconds else 0.0
        how = (f"{index.backend} vectors, re-ranked by the {index.reranker_backend} backend at query time"
               if index.retrieval == "two_stage" else f"{index.backend} backend")
        echo(f"{out}: {len(index.documents)} documents, {len(index)} chunks "
                   f"({index.built_index_type} index, {index.model}, {how}); "
                   f"{len(report.added)} added, {len(report.changed)} changed, "
                   f"{len(report.unchanged)} unchanged, {len(report.removed)} removed; "
                   f"{report.chunks_embedded} chunks embedded ({rate:.1f}/s)")


def search_command(
    index_dir: Path = typer.Argument(..., help="An index folder written by `instructkit index`."),
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "-k", "--top-k", help="Number of passages to show."),
    snippet: int = typer.Option(200, "--snippet", help="Characters of each passage to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
    retrieval: Optional[str] = typer.Option(None, "--retrieval", help="two_stage, hybrid (BM25 + dense, fused) or dense; default: the index's own. two_stage needs an index built for it."),
    candidates: Optional[int] = typer.Option(None, "--candidates", min=1, max=200, help="two_stage: first-stage candidates re-ranked by MiniLM (default: the rag builder's rerank_candidates)."),
) -> None:
    """Show the top-k passages for QUERY: rank, score, document title and URL, section, snippet."""
    from instructkit.embeddings import load_embedder
    from instructkit.recordbuilders.rag.index import RETRIEVAL_MODES, RagIndex

    if retrieval is not None and retrieval not in RETRIEVAL_MODES:
        raise typer.BadParameter(f"one of {', '.join(RETRIEVAL_MODES)}", param_hint="--retrieval")
    meta_file = index_dir / "meta.json"
    if not meta_file.is_file():
        raise SourceError("not an index folder (no meta.json); build one with `instructkit index`",
                          file=str(index_dir))
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    # the backend the index was built with: query vectors must come from the same one
    embedder = load_embedder(meta["model"], backend=meta.get("backend", "torch"))
    reranker = cache = None
    if (retrieval or meta.get("retrieval")) == "two_stage":
        from instructkit.vector_cache import VectorCache

        reranker = load_embedder(meta["model"], backend=meta.get("reranker_backend", "auto"))
        # chunk vectors of the re-ranker, kept by content hash: the next search reuses them
        cache = VectorCache.for_embedder(reranker)
    index = RagIndex.open(index_dir, embedder, retrieval=retrieval, reranker=reranker, rerank_cache=cache,
                          candidates=candidates)
    try:
        hits = index.search_many([query], k)[0]
    finally:
        index.close()
    if as_json:
        for h in hits:
            echo(json.dumps({"rank": h.rank, "score": round(h.score, 4), **h.chunk.as_dict()},
                                  ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"top {len(hits)} for: {query}", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document", overflow="fold")
    table.add_column("section")
    table.add_column("snippet")
    for h in hits:
        c = h.chunk
        doc = f"{c.title or c.doc_id}\n[dim]{c.url or ''}[/dim]"
        text = " ".join(c.text.split())
        table.add_row(str(h.rank), f"{h.score:.3f}", doc, c.section or f"chars {c.start}-{c.end}",
                      text[:snippet] + ("…" if len(text) > snippet else ""))
    Console().print(table)
