"""``python -m instructkit.llm._llama_server ARGS`` = ``python -m llama_cpp.server ARGS``,
with llama.cpp's extra weight buffer types (AMX / CPU repacking) turned off unless
``INSTRUCTKIT_LLAMA_REPACK=1``.

Why: llama-cpp-python built natively on a Xeon with AMX crashes (general protection fault
in libggml-cpu) on the first multi-token prompt when Q4_1 weights are repacked for AMX;
``use_extra_bufts=False`` (llama.cpp's ``--no-repack``) avoids that path. The server has
no flag for it, so it is set here before the server module runs. For a 135M model the
speed difference is negligible.
"""

from __future__ import annotations

import os
import runpy


def _patch() -> None:
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def default_params():
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = default_params


if __name__ == "__main__":
    if os.environ.get("INSTRUCTKIT_LLAMA_REPACK") != "1":
        _patch()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
