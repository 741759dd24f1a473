"""Secrets never leave in a message, a log line, a quarantine entry or a file.

``scrub_secrets`` replaces token-shaped strings (``Bearer ...``, Hugging Face ``hf_...``,
OpenAI/Anthropic ``sk-...``, GitHub, Slack, AWS access keys, JWTs) and the values of the
credential environment variables with ``***``. It is cheap (one compiled regex plus a few
``str.replace``) and applied wherever text leaves: the CLI's error line, the ``instructkit``
logger, the quarantine writer, ``llm-check`` and the Hub client. It also hides the
``user:password@`` of a URL (``http://admin:pw@host`` becomes ``http://***@host``).

``find_secrets`` names the kinds of credential a text holds (for the publish gate, which
refuses them); ``without_url_credentials`` strips ``user:password@`` from every URL of a text
or a JSON-like value: what the build writes into a dataset folder goes through it.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["scrub_secrets", "secret_values", "register_secret", "SECRET_ENV", "NON_LLM_SECRET_ENV",
           "is_non_llm_secret", "SecretFilter", "find_secrets", "redact_url_credentials",
           "without_url_credentials", "SECRET_KINDS"]

#: environment variables that hold credentials (their values are scrubbed wherever seen)
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
              "AZURE_OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "GITHUB_TOKEN", "GH_TOKEN")

#: credentials that are not for a language model: ``llm.api_key_env`` may not name them
#: (the recipe would send them to whatever endpoint it names) unless explicitly allowed
NON_LLM_SECRET_ENV = re.compile(
    r"^(HF_TOKEN|HUGGING_FACE_HUB_TOKEN|HF_.*TOKEN.*|AWS_.*|AZURE_(?!OPENAI).*|GOOGLE_APPLICATION_CREDENTIALS|"
    r"GCP_.*|GITHUB_.*|GH_TOKEN|GITLAB_.*|SSH_.*|.*PASSWORD.*|.*PASSWD.*|DATABASE_URL|PG.*|"
    r"MYSQL_.*|SLACK_.*|NPM_TOKEN|PYPI_.*|TWINE_.*|DOCKER_.*|KUBE.*|VAULT_.*)$", re.IGNORECASE)

#: well-known credential shapes, by kind (the kind is what a gate line names, never the value)
SECRET_KINDS: dict[str, str] = {
    "bearer token": r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{8,}",
    "OpenAI/Anthropic API key": r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{12,}",
    "Stripe key": r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}",
    "GitLab token": r"\bglpat-[A-Za-z0-9_-]{20,}",
    "Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}|\bhooks\.slack\.com/services/[A-Za-z0-9/]{20,}",
    "AWS access key": r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    "Google API key": r"\bAIza[A-Za-z0-9_-]{35}",
    "npm token": r"\bnpm_[A-Za-z0-9]{36}\b",
    "PyPI token": r"\bpypi-AgE[A-Za-z0-9_-]{20,}",
    "JSON web token": r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "private key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                   r"(?:[A-Za-z0-9+/=\s:,-]{0,8000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?",
}

_TOKEN_SHAPES = re.compile("|".join(f"(?:{rx})" for rx in SECRET_KINDS.values()))
_KIND_PATTERNS = {kind: re.compile(rx) for kind, rx in SECRET_KINDS.items()}

#: the ``user:password@`` of a URL (any scheme): the password part is what makes it a credential
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@:'\"<>]*:[^\s/?#@'\"<>]*@")


def redact_url_credentials(text: str, replacement: str = "") -> str:
    """``text`` with the ``user:password@`` of every URL replaced by ``replacement`` (by default
    removed: ``http://admin:pw@host/v1`` becomes ``http://host/v1``)."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return _URL_CREDENTIALS.sub(lambda m: m.group(1) + replacement, text)


def without_url_credentials(value: Any) -> Any:
    """A copy of a JSON-like value (or a string) with every URL's ``user:password@`` removed:
    what a build writes into its folder (the recipe copy, the manifest) and so what ``publish``
    could upload never holds a URL's password."""
    if isinstance(value, str):
        return redact_url_credentials(value)
    if isinstance(value, Mapping):
        return {k: without_url_credentials(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_url_credentials(v) for v in value]
    return value


def find_secrets(text: str) -> Counter[str]:
    """The kinds of credential ``text`` holds, with how many of each (never the values): the
    well-known token shapes and URLs with a password."""
    found: Counter[str] = Counter()
    if not isinstance(text, str) or not text:
        return found
    if _TOKEN_SHAPES.search(text):
        for kind, rx in _KIND_PATTERNS.items():
            n = sum(1 for _ in rx.finditer(text))
            if n:
                found[kind] += n
    n = sum(1 for _ in _URL_CREDENTIALS.finditer(text)) if "@" in text else 0
    if n:
        found["password in a URL"] += n
    return found


_REGISTERED: set[str] = set()


def register_secret(value: str | None) -> None:
    """Scrub this value too from now on (e.g. the key the LLM client read from
    ``llm.api_key_env``, whatever the variable is called)."""
    if value and len(value) >= 6:
        _REGISTERED.add(value)


def secret_values(extra: Iterable[str | None] = ()) -> list[str]:
    """Credential values from the environment, registered ones and ``extra``, longest first."""
    vals = [*extra, *_REGISTERED, *(os.environ.get(k) for k in SECRET_ENV)]
    return sorted({v for v in vals if v and len(v) >= 6}, key=len, reverse=True)


def scrub_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with token-shaped strings and known credential values replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    for s in secret_values() if secrets is None else secrets:
        if s and s in text:
            text = text.replace(s, "***")
    return redact_url_credentials(_TOKEN_SHAPES.sub(_mask, text), "***@")


def _mask(m: re.Match) -> str:
    tok = m.group(0)
    if tok.lower().startswith("bearer"):
        return tok.split()[0] + " ***"
    if tok.startswith("-----BEGIN"):
        return "-----BEGIN *** PRIVATE KEY-----"
    for prefix in ("hf_", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "glpat-"):
        if tok.startswith(prefix):
            return prefix + "***"
    return "***"


def is_non_llm_secret(env_name: str) -> bool:
    return bool(NON_LLM_SECRET_ENV.match(env_name or ""))


class SecretFilter(logging.Filter):
    """Scrubs secrets from every record of the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logged as is
            return True
        clean = scrub_secrets(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        return True
