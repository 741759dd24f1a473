"""Guideline documents: load Markdown, plain text, HTML, PDF and JSON ``{url: text}`` files.

Each ``Document`` keeps what a citation needs (title, source URL, license, date) and a
content hash, so an index can tell an unchanged document from a changed one without
re-embedding it. Offsets of chunks index ``Document.text`` exactly as loaded here.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError
from instructkit._resources import require

__all__ = ["Document", "FORMATS", "load_documents", "detect_format", "doc_id_for"]

#: format name -> file suffixes it is detected from
FORMATS: dict[str, tuple[str, ...]] = {
    "markdown": (".md", ".markdown"),
    "text": (".txt", ".text"),
    "html": (".html", ".htm"),
    "pdf": (".pdf",),
    "json_url_text": (".json",),
}


@dataclass
class Document:
    """One guideline document as loaded: its text and what a citation of it needs."""

    doc_id: str
    text: str
    title: str
    format: str
    url: str | None = None
    license: str = "unknown"
    date: str | None = None
    path: str | None = None
    content_hash: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = text_hash(self.text)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Document":
        return cls(**d)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def doc_id_for(key: str) -> str:
    """A stable id from what identifies a document (its URL, else its path), not its content,
    so that an edited document keeps its id and replaces its old chunks."""
    return "doc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    for fmt, suffixes in FORMATS.items():
        if suffix in suffixes:
            return fmt
    raise SourceError(f"cannot tell the document format from the suffix '{suffix}' "
                      f"(give format: one of {', '.join(FORMATS)})", file=str(path))


def load_documents(path: str | Path, *, format: str | None = None, license: str = "unknown",
                   url: str | None = None, title: str | None = None, date: str | None = None,
                   limit: int | None = None) -> list[Document]:
    """Load every document under ``path`` (a file, or a folder searched recursively).

    ``license``/``url``/``title``/``date`` are defaults: metadata found in a document
    (Markdown front matter, HTML ``<title>``/``<meta>``, PDF info) wins over them except
    for the license, which is declared by whoever configures the corpus, never guessed.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError("document path not found", file=str(path))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and (format or _known_suffix(p)))
        if not files:
            raise SourceError("no documents found (.md .txt .html .pdf .json)", file=str(path))
    else:
        files = [path]
    docs: list[Document] = []
    for f in files:
        fmt = format or detect_format(f)
        loader = _LOADERS.get(fmt)
        if loader is None:
            raise SourceError(f"unknown document format '{fmt}' (one of {', '.join(FORMATS)})",
                              file=str(f))
        for doc in loader(f, license=license, url=url, title=title, date=date):
            docs.append(doc)
            if limit is not None and len(docs) >= limit:
                return docs
    return docs


def _known_suffix(p: Path) -> bool:
    return any(p.suffix.lower() in s for s in FORMATS.values())


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not valid UTF-8 (byte {exc.start})", file=str(path)) from None


def _file_key(path: Path) -> str:
    return path.resolve().as_posix()


# -- Markdown and plain text ------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
_MD_H1 = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.M)


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    """YAML front matter (``---`` block) carries title/url/date/license of a file."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    import yaml

    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SourceError("front matter is not valid YAML", file=str(path),
                          line=(mark.line + 2) if mark else None) from None
    if not isinstance(meta, dict):
        raise SourceError("front matter must be a mapping", file=str(path), line=2)
    return meta, text[m.end():]


def _load_markdown(path: Path, **defaults: Any) -> Iterator[Document]:
    yield _text_document(path, "markdown", **defaults)


def _load_text(path: Path, **defaults: Any) -> Iterator[Document]:
    yield _text_document(path, "text", **defaults)


def _text_document(path: Path, fmt: str, *, license: str, url: str | None, title: str | None,
                   date: str | None) -> Document:
    meta, body = _split_front_matter(_read_text(path), path)
    found_title = None
    if fmt == "markdown":
        m = _MD_H1.search(body)
        found_title = m.group(1).strip() if m else None
    else:
        first = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
        found_title = first if 0 < len(first) <= 120 else None
    url = meta.get("url") or meta.get("source_url") or url
    return Document(
        doc_id=doc_id_for(str(url) if url else _file_key(path)), text=body,
        title=str(meta.get("title") or found_title or title or path.stem), format=fmt,
        url=str(url) if url else None, license=str(meta.get("license") or license),
        date=_iso(meta.get("date")) or date, path=str(path),
        meta={k: v for k, v in meta.items() if k not in {"title", "url", "source_url", "license", "date"}
              and isinstance(v, (str, int, float, bool))})


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()[:10]
    return str(value)


# -- HTML ---------------------------------------------------------------------------------

_HTML_DATE_META = ("citation_publication_date", "dc.date", "dcterms.date", "date",
                   "article:published_time", "citation_date")


def _load_html(path: Path, **defaults: Any) -> Iterator[Document]:
    yield html_document(_read_text(path), key=_file_key(path), path=str(path), **defaults)


def html_document(html: str, *, key: str, license: str, url: str | None = None,
                  title: str | None = None, date: str | None = None,
                  path: str | None = None) -> Document:
    """HTML -> Markdown-style text: headings become ``#`` lines so the header-aware
    splitter sees the document's sections; scripts, styles and navigation are dropped."""
    bs4 = require("bs4", "rag", "reading HTML guideline documents")
    soup = bs4.BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "form"]):
        tag.decompose()
    found_title = soup.title.get_text(" ", strip=True) if soup.title else None
    h1 = soup.find("h1")
    if not found_title and h1:
        found_title = h1.get_text(" ", strip=True)
    found_date = None
    for m in soup.find_all("meta"):
        name = (m.get("name") or m.get("property") or "").lower()
        if name in _HTML_DATE_META and m.get("content"):
            found_date = m["content"][:10]
            break
    canonical = soup.find("link", rel="canonical")
    found_url = canonical.get("href") if canonical else None
    body = soup.body or soup
    blocks: list[str] = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "td", "th", "pre",
                             "blockquote", "dd", "dt"]):
        # skip containers nested in another block we already take (li inside li, p inside td)
        if el.find_parent(["p", "li", "td", "th", "pre", "blockquote", "dd", "dt"]):
            continue
        text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name[0] == "h" and el.name[1:].isdigit():
            blocks.append("#" * int(el.name[1]) + " " + text)
        elif el.name == "li":
            blocks.append("- " + text)
        else:
            blocks.append(text)
    text = "\n\n".join(blocks) + "\n" if blocks else body.get_text("\n", strip=True)
    url = found_url or url
    return Document(doc_id=doc_id_for(url or key), text=text,
                    title=found_title or title or Path(key).stem, format="html", url=url,
                    license=license, date=found_date or date, path=path)


# -- PDF ----------------------------------------------------------------------------------

def _load_pdf(path: Path, *, license: str, url: str | None, title: str | None,
              date: str | None) -> Iterator[Document]:
    pypdf = require("pypdf", "rag", "reading PDF guideline documents")
    try:
        reader = pypdf.PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
    except Exception as exc:  # pypdf raises many types for broken files
        raise SourceError(f"not a readable PDF ({type(exc).__name__})", file=str(path)) from None
    # pages are joined with a blank line; page starts are kept so a chunk can name its page
    text, page_starts = "", []
    for p in pages:
        page_starts.append(len(text))
        text += p.strip() + "\n\n"
    found_title = (info.get("/Title") or "").strip() if hasattr(info, "get") else ""
    if not found_title:
        found_title = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:120]
    found_date = None
    raw_date = info.get("/CreationDate") if hasattr(info, "get") else None
    if raw_date and re.match(r"D:\d{8}", str(raw_date)):
        d = str(raw_date)[2:10]
        found_date = f"{d[:4]}-{d[4:6]}-{d[6:8]}"
    yield Document(doc_id=doc_id_for(url or _file_key(path)), text=text,
                   title=found_title or title or path.stem, format="pdf", url=url,
                   license=license, date=date or found_date, path=str(path),
                   meta={"page_starts": page_starts})


# -- JSON {url: text} -----------------------------------------------------------------------

# Web-page chrome that precedes the article in scraped pages (CDC and similar sites):
# the article starts after the last of these markers found near the top.
_CHROME_MARKERS = (
    "subject line of e-mail.",
    "Morbidity and Mortality Weekly Report (MMWR)",
    "MMWR ShareCompartir",
    "Section Navigation CDC Home",
    "Skip directly to site content",
    "Saving Lives, Protecting People",
    "Syndicate",
)
_MONTHS = ("January February March April May June July August September October "
           "November December").split()
_DATE = r"(" + "|".join(_MONTHS) + r")\s+(\d{1,2}),\s+((?:19|20)\d\d)"
# newer MMWR pages: "<title> Supplements / October 10, 2024 / 73(4);79–86"
_ISSUE_LINE = re.compile(r"\s*Supplements?\s*/\s*" + _DATE + r"\s*/")
# an MMWR volume number is its year minus 1951 (URLs .../su5501a4.htm, .../volumes/65/su/...)
_MMWR_VOLUME = re.compile(r"cdc\.gov/mmwr/(?:preview/mmwrhtml/(?:su|rr|ss|mm)(\d\d)\d|volumes/(\d+)/)")


def _load_json_url_text(path: Path, *, license: str, url: str | None, title: str | None,
                        date: str | None) -> Iterator[Document]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SourceError(f"not valid JSON ({exc.msg})", file=str(path), line=exc.lineno) from None
    if not isinstance(data, dict):
        raise SourceError("expected an object {url: text}", file=str(path))
    for key, value in data.items():
        meta: dict[str, Any] = {}
        if isinstance(value, dict):
            meta = value
            value = value.get("text")
        if not isinstance(value, str):
            raise SourceError("value must be the document text (or {text: ...})",
                              file=str(path), field=str(key))
        if not value.strip():
            continue
        yield url_text_document(str(key), value, license=str(meta.get("license") or license),
                                title=meta.get("title"), date=_iso(meta.get("date")) or date,
                                path=f"{path}#{key}")


def url_text_document(url: str, text: str, *, license: str, title: str | None = None,
                      date: str | None = None, path: str | None = None) -> Document:
    """A scraped page: drop the leading site chrome; the title is the text before the issue
    line (``Supplements / <date> /``) when there is one, else the first line; the date is
    the issue date, else the year of the MMWR volume in the URL, else unknown."""
    head = text[:3000]
    start = 0
    for marker in _CHROME_MARKERS:
        i = head.rfind(marker)
        if i >= 0:
            start = max(start, i + len(marker))
    body = text[start:].lstrip()
    issue = _ISSUE_LINE.search(body[:1500])
    if not title:
        first = body[: issue.start()] if issue else body.split("\n", 1)[0]
        title = _clip_words(" ".join(first.split()), 150) or url
    if not date and issue:
        date = f"{issue.group(3)}-{_MONTHS.index(issue.group(1)) + 1:02d}-{int(issue.group(2)):02d}"
    if not date:
        vol = _MMWR_VOLUME.search(url)
        if vol:
            date = str(1951 + int(vol.group(1) or vol.group(2)))
    return Document(doc_id=doc_id_for(url), text=body, title=title, format="json_url_text",
                    url=url, license=license, date=date, path=path)


def _clip_words(s: str, n: int) -> str:
    if len(s) <= n:
        return s
    cut = s[:n].rsplit(" ", 1)[0]
    return cut + " …"


_LOADERS = {
    "markdown": _load_markdown,
    "text": _load_text,
    "html": _load_html,
    "pdf": _load_pdf,
    "json_url_text": _load_json_url_text,
}


def iter_documents(specs: Iterable[dict[str, Any]], base: Path | None = None,
                   ctx: Any = None) -> list[Document]:
    """Load documents from config entries ``{path, format?, license?, url?, title?, date?, limit?,
    phi?}``; a doc id seen twice (same URL in two files) is an error, naming both places.

    With the run's ``ctx``, a recipe's paths are checked like source paths, and the text of
    documents that may hold PHI (``phi: true``, the default) is anonymized as it is loaded,
    before it is chunked, embedded, indexed or shown to a model."""
    from instructkit.recipe.load import resolve_path

    docs: list[Document] = []
    seen: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if "path" not in spec:
            raise SourceError("a documents entry needs a path", field=f"documents.{i}.path")
        if ctx is not None and base is None:
            from instructkit.recipe.paths import checked_source_path

            p = checked_source_path(str(spec["path"]), ctx, f"documents.{i}.path")
        else:
            p = resolve_path(str(spec["path"]), base)
        loaded = load_documents(p, format=spec.get("format"), license=spec.get("license", "unknown"),
                                url=spec.get("url"), title=spec.get("title"), date=spec.get("date"),
                                limit=spec.get("limit"))
        if ctx is not None and spec.get("phi", True):
            loaded = anonymized_documents(loaded, ctx)
        for d in loaded:
            if d.doc_id in seen:
                raise SourceError(f"document {d.url or d.path} appears twice (also in {seen[d.doc_id]})",
                                  file=str(p))
            seen[d.doc_id] = d.path or str(p)
            docs.append(d)
    return docs


def all_phi_free(specs: Iterable[dict[str, Any]]) -> bool:
    """Every documents entry is declared free of PHI (``phi: false``; unsaid means ``true``)."""
    specs = list(specs)
    return bool(specs) and all(spec.get("phi", True) is False for spec in specs)


def document_location(doc: Document, start: int, end: int) -> str:
    """Where a chunk came from: the document's file name (never the folder it was read from,
    which can name a person) or URL, and the character span."""
    where = Path(doc.path).name if doc.path else doc.url
    return f"{where}@{start}-{end}"


def anonymized_documents(docs: Iterable[Document], ctx: Any) -> list[Document]:
    """Documents with PHI in their text and title replaced by placeholders (the run's guard:
    nothing changes with ``llm.send_phi: true``)."""
    import dataclasses

    from instructkit.steps.anonymize.guard import phi_guard

    docs = list(docs)
    guard = phi_guard(ctx)
    if guard.send_phi or not docs:
        return docs
    texts = guard.scrub_many([d.text for d in docs])
    titles = guard.scrub_many([d.title or "" for d in docs])
    return [dataclasses.replace(d, text=t, title=ti or d.title, content_hash="")
            for d, t, ti in zip(docs, texts, titles)]
