"""Secrets never leave in a message, a log line, a quarantine entry or a file.

``scrub_secrets`` replaces token-shaped strings (``Bearer ...``, Hugging Face ``hf_...``,
OpenAI/Anthropic ``sk-...``, GitHub, Slack, AWS access keys, JWTs) and the values of the
credential environment variables with ``***``. It is cheap (one compiled regex plus a few
``str.replace``) and applied wherever text leaves: the CLI's error line, the ``instructkit``
logger, the quarantine writer, ``llm-check`` and the Hub client.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

__all__ = ["scrub_secrets", "secret_values", "register_secret", "SECRET_ENV", "NON_LLM_SECRET_ENV",
           "is_non_llm_secret", "SecretFilter"]

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

_TOKEN_SHAPES = re.compile("|".join([
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}",
    r"\bhf_[A-Za-z0-9]{8,}",
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{12,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
]))


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
    return _TOKEN_SHAPES.sub(_mask, text)


def _mask(m: re.Match) -> str:
    tok = m.group(0)
    if tok.lower().startswith("bearer"):
        return tok.split()[0] + " ***"
    for prefix in ("hf_", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox"):
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
