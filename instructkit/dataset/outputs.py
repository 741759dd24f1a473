"""Where a command other than ``build`` may write: the checks its ``--out`` passes first.

A command writes only what it was asked to, and never over what it did not write: not over
its own input, not into a dataset folder a build wrote (the next rebuild would then refuse
the folder, or the command would change a file the manifest vouches for), and a report only
over a report. Each refusal is one ``OutputError`` line (exit 2), before anything is written.
(``build --out`` has its own rules, in ``staging.check_output_dir``.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from instructkit._exceptions import OutputError
from instructkit.dataset.layout import COMPLETE_MARKER, REPORT

__all__ = ["enclosing_dataset", "check_stage_outputs", "check_report_out", "check_index_out",
           "is_instructkit_report", "report_name_in", "rerecord_file"]

#: how an instructkit report says so (``report_assets/report.html.j2``)
_REPORT_GENERATOR = '<meta name="generator" content="instructkit'


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def enclosing_dataset(path: Path) -> Path | None:
    """The dataset folder a build wrote that holds ``path`` (itself or an ancestor), if any."""
    for folder in (_real(path), *_real(path).parents):
        if (folder / COMPLETE_MARKER).is_file():
            return folder
    return None


def _refuse_inside_dataset(option: str, path: Path) -> None:
    dataset = enclosing_dataset(path)
    if dataset is not None:
        raise OutputError(f"{option} {path}: is inside the dataset folder {dataset} that "
                          "`instructkit build` wrote; write it elsewhere")


def check_stage_outputs(input: Path, out: Path, quarantine: Path) -> None:
    """A stage command (anonymize, dedup, validate, judge): ``--out`` and the quarantine are
    neither the input nor each other, not folders, and not inside a built dataset folder.
    Writing over the input would lose the records the stage drops (only a scrubbed copy
    reaches the quarantine)."""
    src = _real(input)
    for option, path in (("--out", out), ("--quarantine", quarantine)):
        if _real(path) == src:
            raise OutputError(f"{option} {path}: is the input file; write to another file "
                              "(the input is never changed)")
        if path.is_dir():
            raise OutputError(f"{option} {path}: is a folder, not a file")
        _refuse_inside_dataset(option, path)
    if _real(out) == _real(quarantine):
        raise OutputError(f"--quarantine {quarantine}: is the --out file; give two files")


def is_instructkit_report(path: Path) -> bool:
    """Whether ``path`` is a report page instructkit wrote (its generator tag)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return _REPORT_GENERATOR in head


def check_report_out(out: Path, dataset: Path) -> None:
    """``report --out``: a new file, or a report instructkit wrote; never another file, and
    never into another dataset folder (its rebuild would then refuse it)."""
    if out.is_dir():
        raise OutputError(f"--out {out}: is a folder; give the .html file to write")
    if (out.exists() or out.is_symlink()) and not is_instructkit_report(out):
        raise OutputError(f"--out {out}: exists and is not a report instructkit wrote; "
                          "choose a new file")
    holder = enclosing_dataset(out)
    if holder is not None and holder != _real(dataset):
        raise OutputError(f"--out {out}: is inside another dataset folder, {holder}; write the "
                          "report elsewhere")


def report_name_in(dataset: Path, out: Path) -> str | None:
    """``out`` relative to the dataset folder it is written into, or None when outside."""
    try:
        return _real(out).relative_to(_real(dataset)).as_posix()
    except ValueError:
        return None


def check_index_out(out: Path, reads: Iterable[tuple[str, Path]]) -> None:
    """``index --out``: a new or empty folder, or an index; not inside a built dataset; not
    where the documents are read (the next run would index its own files)."""
    from instructkit.dataset.staging import check_not_reading_itself

    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and not (out / "meta.json").is_file() and any(out.iterdir()):
        raise OutputError(f"--out {out}: the folder holds files that are not an instructkit "
                          "index; choose a new or empty folder")
    _refuse_inside_dataset("--out", out)
    check_not_reading_itself(out, reads)


def rerecord_file(folder: Path, name: str) -> None:
    """After ``report`` wrote ``folder/name``, put its sha256 in the completion marker, so
    the page counts as the build's and a rebuild may replace it (a
    folder from an older version, whose marker lists no files, is left as it is)."""
    from instructkit.dataset.writer import file_sha256

    marker_path = folder / COMPLETE_MARKER
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict):
        return
    files[name] = file_sha256(folder / name)
    tmp = marker_path.with_name(marker_path.name + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, marker_path)
