"""Talking to the Hugging Face Hub: the token, one commit with retries, and scrubbing secrets.

The token comes from the caller, ``HF_TOKEN`` or the ``huggingface_hub`` login. It is passed
to ``HfApi`` only; every message that leaves this module has it (and any ``hf_...`` token
shape) replaced by ``***``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from instructkit._exceptions import PublishError

__all__ = ["resolve_token", "secret_values", "scrub", "push_files", "TRANSIENT_STATUS"]

logger = logging.getLogger("instructkit")

T = TypeVar("T")

#: HTTP statuses worth another try
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: environment variables that hold credentials (never to be published or printed)
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")


def resolve_token(token: str | None = None) -> str:
    """The token to publish with; raises PublishError (without any token) when there is none."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()  # HF_TOKEN, then the token saved by `hf auth login`
    if not found:
        raise PublishError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login` "
                           "(use --dry-run to check the gates without one)")
    return found


def secret_values(token: str | None = None) -> list[str]:
    """Credential values that must never appear in published files or messages."""
    vals = [token] + [os.environ.get(k) for k in SECRET_ENV]
    return sorted({v for v in vals if v and len(v) >= 6}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return _TOKEN_SHAPE.sub("hf_***", text)


def _is_transient(exc: BaseException) -> bool:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status in TRANSIENT_STATUS
    # httpx(2) transport errors: connection refused/reset, timeouts, protocol errors
    names = {c.__name__ for c in type(exc).__mro__}
    if "OfflineModeIsEnabled" in names:
        return False
    return bool(names & {"TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError",
                         "ConnectionError", "TimeoutError"})


def with_retries(fn: Callable[[], T], what: str, *, retries: int, backoff: float,
                 secrets: Sequence[str]) -> T:
    """Call ``fn``; retry transient HTTP errors with exponential backoff; scrub what escapes."""
    attempt = 0
    while True:
        try:
            return fn()
        except PublishError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a scrubbed PublishError
            attempt += 1
            if _is_transient(exc) and attempt <= retries:
                wait = backoff * (2 ** (attempt - 1))
                logger.warning("%s failed (%s), retry %d of %d in %.1fs", what,
                               scrub(_short(exc), secrets), attempt, retries, wait)
                time.sleep(wait)
                continue
            raise PublishError(f"{what} failed: {scrub(_short(exc), secrets)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = " ".join(text[:3])[:500] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def push_files(files: Sequence[Any], *, repo_id: str, private: bool, token: str,
               endpoint: str | None = None, commit_message: str = "Publish dataset with instructkit",
               retries: int = 4, backoff: float = 1.0) -> tuple[str, str | None]:
    """Create the dataset repo (private unless asked) and upload ``files`` in one commit.

    ``files`` hold ``path`` (in the repo) and ``data`` (bytes). Returns (dataset URL, commit URL).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    secrets = secret_values(token)
    if constants.HF_HUB_OFFLINE:
        raise PublishError("HF_HUB_OFFLINE is set: unset it to publish (or use --dry-run)")
    api = HfApi(endpoint=endpoint, token=token)
    kw: dict[str, Any] = {"retries": retries, "backoff": backoff, "secrets": secrets}
    repo_url = with_retries(lambda: api.create_repo(repo_id, repo_type="dataset", private=private,
                                                    exist_ok=True), "creating the dataset repo", **kw)
    if private:
        # exist_ok keeps an existing repo's visibility: never push private data into a public repo
        info = with_retries(lambda: api.dataset_info(repo_id), "reading the repo's visibility", **kw)
        if info.private is False:
            raise PublishError(f"the dataset repo {repo_id} already exists and is public; pass "
                               "--public (private=False) to publish to it, or choose another repo id")

    def commit():
        # fresh operations each try: huggingface_hub marks them as used
        ops = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=f.data) for f in files]
        return api.create_commit(repo_id, ops, commit_message=commit_message, repo_type="dataset")

    info = with_retries(commit, "uploading the files", **kw)
    url = str(getattr(repo_url, "url", None) or repo_url)
    return url, getattr(info, "commit_url", None)
