"""``publish``: gate a dataset folder, then push it to the Hub in one commit.

What is uploaded (and nothing else): ``README.md`` (the card, rendered from the folder so it
always matches the data), ``manifest.json`` and ``recipe.yaml`` (their public copies: local
absolute paths cut to names, inline rows of PHI sources withheld; ``hub.public_files``),
``data/**/*.parquet`` and the training exports ``exports/*.jsonl``. The quarantine stays
local: it holds dropped records.

Gate 1 audits every one of those files as uploaded (``hub.upload_audit``), under a policy
from the package and this command that the folder can only make stricter (``hub.policy``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import GateError, PublishError
from instructkit.dataset.card import card_for_folder
from instructkit.dataset.layout import row_to_record
from instructkit.hub.gates import GateResult, run_gates
from instructkit.hub.policy import gate_policy, read_folder_recipe
from instructkit.hub.public_files import public_manifest, public_recipe
from instructkit.hub.upload_audit import audit_upload
from instructkit.hub.upload import push_files, resolve_token, secret_values

__all__ = ["publish", "publish_dataset", "PublishResult", "UploadFile", "collect_files"]

logger = logging.getLogger("instructkit")

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass
class UploadFile:
    """One file of the commit: its path in the repo and its exact bytes (held in memory, or
    read from ``local`` so large data files are streamed, not loaded)."""

    path: str
    content: bytes | None = field(default=None, repr=False)
    local: Path | None = None

    @property
    def data(self) -> bytes | str:
        """What ``CommitOperationAdd`` uploads: the bytes, or the local file's path."""
        return self.content if self.content is not None else str(self.local)

    def read(self) -> bytes:
        return self.content if self.content is not None else Path(self.local).read_bytes()

    @functools.cached_property
    def size(self) -> int:
        return len(self.content) if self.content is not None else Path(self.local).stat().st_size

    @functools.cached_property
    def sha256(self) -> str:
        if self.content is not None:
            return hashlib.sha256(self.content).hexdigest()
        h = hashlib.sha256()
        with Path(self.local).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()


@dataclass
class PublishResult:
    """What publishing checked, what it uploaded (or would upload), and where."""

    repo_id: str
    private: bool
    dry_run: bool
    gates: list[GateResult]
    files: list[UploadFile]
    card: str
    url: str | None = None
    commit_url: str | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def gates_report(self) -> str:
        return "\n".join(str(g) for g in self.gates)

    def files_report(self) -> str:
        return "\n".join(f"  {f.path}  {f.size} bytes  sha256 {f.sha256[:16]}" for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "private": self.private, "dry_run": self.dry_run,
                "passed": self.passed, "gates": [g.as_dict() for g in self.gates],
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
                "url": self.url, "commit_url": self.commit_url}


def _load_manifest(folder: Path) -> dict[str, Any] | None:
    p = folder / "manifest.json"
    if not p.is_file():
        return None
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(m, dict):
        raise PublishError(f"{p}: expected a JSON object")
    return m


def collect_files(folder: str | Path, card_text: str,
                  manifest: Mapping[str, Any] | None) -> list[UploadFile]:
    """The exact files of the commit, in a stable order."""
    folder = Path(folder)
    files = [UploadFile("README.md", card_text.encode("utf-8"))]
    if manifest is not None:
        files.append(UploadFile("manifest.json", (json.dumps(public_manifest(manifest), indent=2,
                                                             ensure_ascii=False) + "\n").encode("utf-8")))
    if (folder / "recipe.yaml").is_file():
        files.append(UploadFile("recipe.yaml", public_recipe((folder / "recipe.yaml").read_bytes())))
    data = sorted((folder / "data").rglob("*.parquet")) if (folder / "data").is_dir() else []
    if not data:
        raise PublishError(f"{folder}: no data/*.parquet files: is this a folder written by "
                           "`instructkit build`?")
    for p in data:
        files.append(UploadFile(p.relative_to(folder).as_posix(), local=p))
    if (folder / "exports").is_dir():
        for p in sorted((folder / "exports").rglob("*.jsonl")):
            files.append(UploadFile(p.relative_to(folder).as_posix(), local=p))
    return files


def check_folder(folder: str | Path, *, repo_id: str | None = None,
                 audit: Mapping[str, Any] | None = None, require_complete: bool = True,
                 names: bool = True,
                 ) -> tuple[dict[str, Any] | None, str, list[UploadFile], list[GateResult]]:
    """What ``publish`` checks, without sending anything: the manifest, the card rendered
    from the folder, the exact files, and the five gates. ``audit`` is a residual-PHI audit
    report of these very files when the caller has one (the build that just wrote them);
    without it the audit runs here. ``names=False`` skips the name search (spaCy), which
    only reports: the page a build writes for itself uses it, so a build without an audit
    stage does not load a language model for it; the verdict then says names were not
    looked for, and ``publish`` and ``instructkit report`` look."""
    from instructkit.dataset.reader import DatasetFolder

    folder = Path(folder)
    DatasetFolder(folder, require_complete=require_complete)  # refuses an unfinished build
    manifest = _load_manifest(folder)
    card_text = str(card_for_folder(folder, manifest or {}, repo_id=repo_id, complete=require_complete))
    files = collect_files(folder, card_text, manifest)
    for f in files:  # fixed now: the result stays valid if the folder goes (publish_dataset)
        f.size, f.sha256  # noqa: B018
    changed = changed_files(files, manifest)
    report = None
    if manifest is not None:
        policy = gate_policy(manifest, read_folder_recipe(folder))
        policy.names = names
        report = audit_upload(files, manifest, policy, records_audit=audit)
    return manifest, card_text, files, run_gates(manifest, card_text, changed=changed, audit=report)


def changed_files(files: Iterable[UploadFile], manifest: Mapping[str, Any] | None) -> list[str]:
    """Data and export files to upload whose sha256 is not the one the build recorded."""
    recorded = (manifest or {}).get("data_files") or {}
    out = []
    for f in files:
        if f.path.startswith(("data/", "exports/")) and recorded.get(f.path) != f.sha256:
            out.append(f.path)
    return out


def _check_no_secrets(files: Iterable[UploadFile], secrets: list[str]) -> None:
    if not secrets:
        return
    for f in files:
        blob = f.read()
        for s in secrets:
            if s.encode("utf-8") in blob:
                raise PublishError(f"{f.path} contains a credential (a token or API key from the "
                                   "environment): refusing to publish it")


def publish(dir: str | Path, repo_id: str, *, private: bool = True, dry_run: bool = False,
            token: str | None = None, endpoint: str | None = None,
            commit_message: str | None = None, retries: int = 4,
            backoff: float = 1.0) -> PublishResult:
    """Check the five gates on the dataset folder ``dir`` and push it to ``repo_id``.

    The repo is created private unless ``private=False``. With ``dry_run`` nothing is sent
    and no token is needed: the result holds the gate results, the exact files and the card.
    Raises ``GateError`` (with ``.result``) when a gate fails and ``dry_run`` is off, and
    ``PublishError`` when the upload fails (messages never contain the token).
    """
    folder = Path(dir)
    if not folder.is_dir():
        raise PublishError(f"{folder}: no such dataset folder")
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise PublishError(f"repo id '{repo_id}' is not of the form ORG/NAME")
    manifest, card_text, files, gates = check_folder(folder, repo_id=repo_id)
    _check_no_secrets(files, secret_values(token))
    from huggingface_hub import constants

    base = (endpoint or constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip("/")
    result = PublishResult(repo_id=repo_id, private=private, dry_run=dry_run, gates=gates,
                           files=files, card=card_text, url=f"{base}/datasets/{repo_id}")
    for g in gates:
        logger.info("%s", str(g).splitlines()[0])
    if dry_run:
        return result
    if not result.passed:
        err = GateError("publishing refused: " + "; ".join(
            f"gate {g.number} ({g.name}) failed: {' / '.join(g.details)}" for g in result.failed_gates))
        err.result = result  # type: ignore[attr-defined]
        raise err
    tok = resolve_token(token)
    _check_no_secrets(files, secret_values(tok))
    logger.info("publishing %d files to %s (%s)", len(files), repo_id,
                "private" if private else "public")
    url, commit_url = push_files(files, repo_id=repo_id, private=private, token=tok,
                                 endpoint=endpoint,
                                 commit_message=commit_message or _commit_message(manifest),
                                 retries=retries, backoff=backoff)
    result.url, result.commit_url = url, commit_url
    return result


def _commit_message(manifest: Mapping[str, Any] | None) -> str:
    r = (manifest or {}).get("recipe") or {}
    if r.get("name"):
        return f"Publish {r['name']} (recipe sha256 {str(r.get('sha256', ''))[:12]}) with instructkit"
    return "Publish dataset with instructkit"


# -- an in-memory datasets.Dataset ----------------------------------------------------------
def publish_dataset(dataset: Any, repo_id: str, *, manifest: Mapping[str, Any] | None = None,
                    recipe: Any = None, private: bool = True, dry_run: bool = False,
                    token: str | None = None, endpoint: str | None = None,
                    retries: int = 4, backoff: float = 1.0) -> PublishResult:
    """Publish a ``datasets.Dataset`` of instruction records the same way as a folder.

    The records are written to a temporary folder in the same layout (Parquet, card,
    manifest, recipe) and go through the same gates. ``manifest`` is the run's manifest
    (e.g. ``RunResult.manifest``): without one, the stage gate fails, because nothing shows
    the records were anonymized, deduplicated and validated (the audit gate audits the
    records themselves either way).
    """
    import yaml

    from instructkit.dataset.writer import DatasetWriter

    for col in ("instruction", "output", "task", "source"):
        if col not in getattr(dataset, "column_names", []):
            raise PublishError(f"the Dataset has no '{col}' column: publish_dataset expects "
                               "instructkit records (see schemas/record.schema.json)")
    recipe_data = getattr(recipe, "data", recipe) if recipe is not None else None
    with tempfile.TemporaryDirectory(prefix="instructkit-publish-") as tmp:
        out = Path(tmp) / "dataset"
        man = dict(manifest) if manifest is not None else {}
        with DatasetWriter(out, formats=man.get("formats") or ["messages"]) as writer:
            shard = writer.shard_writer()
            n = shard.write(row_to_record(r) for r in dataset)
            hashes = writer.assemble()
            if man.get("records") not in (None, n):
                logger.warning("the Dataset holds %d records, the manifest %s", n, man.get("records"))
            # the counts and file hashes are the written records'; the stages are the run's,
            # so without the run's manifest nothing shows they ran (gate 4 fails)
            man.update(records=n, counts=shard.counts.as_dict(), data_files=hashes)
            text = None
            if recipe_data:
                text = getattr(recipe, "text", None) or yaml.safe_dump(dict(recipe_data), sort_keys=False)
            writer.commit(man, recipe_text=text)
        return publish(out, repo_id, private=private, dry_run=dry_run, token=token,
                       endpoint=endpoint, retries=retries, backoff=backoff)
