"""Building a folder beside its destination and swapping it into place, under a lock.

- ``OutputLock``: one build at a time per output folder. The lock file sits beside the
  folder (the folder itself is replaced) and names the process and host that hold it; a lock
  whose process is gone (same host) is stale and taken over.
- ``StagedFolder``: a hidden sibling ``.NAME.partial-PID-XXXX`` to write into; ``commit()``
  puts it in place of ``NAME`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``, else two
  renames with recovery), so the previous dataset survives any failure or kill before that.
- ``check_output_dir``: a folder is replaced only when it holds nothing but what the previous
  build wrote: the files its completion marker lists, with the same sha256 (a folder from an
  older version: its manifest's data files and the layout's fixed names). Anything else is
  someone's, and the build refuses in one line naming it, before writing anything; the writer
  checks again just before the swap. A linked ``--out`` is followed (``followed_output``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from instructkit._exceptions import OutputError
from instructkit.dataset.layout import (CARD, COMPLETE_MARKER, DATA_DIR, EXPORTS_DIR, MANIFEST,
                                        QUARANTINE, RECIPE, REPORT)

logger = logging.getLogger("instructkit")

__all__ = ["OutputLock", "StagedFolder", "build_record", "check_not_reading_itself",
           "check_output_dir", "check_replaceable", "files_in_the_way", "followed_output",
           "previous_build_files"]


def check_output_dir(out: Path) -> None:
    """Refuse an output path we must not replace: a file, an unwritable parent, or a folder
    holding anything the previous build did not write (replacing it would delete it)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create its parent folder ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: its folder {parent} is not writable")
    check_replaceable(out)


def followed_output(out: Path) -> Path:
    """Where a build into ``out`` really goes: a symbolic link is followed to its target,
    which is replaced (the link stays), so the swap never turns the link into a folder."""
    if not out.is_symlink():
        return out
    target = out.resolve()
    logger.info("--out %s is a link: building into %s", out, target)
    return target


# -- what the previous build wrote --------------------------------------------------------------
#: the names a build writes at the top of its folder, trusted by name in a folder written
#: before builds recorded their files (an older version's marker, or none)
_LEGACY_NAMES = (MANIFEST, CARD, REPORT, QUARANTINE, RECIPE, COMPLETE_MARKER)
#: how many of the files in the way an error names
_NAMED_IN_ERRORS = 3


def build_record(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in a finished staging folder, for the
    completion marker: the list a later build checks before it replaces the folder."""
    from instructkit.dataset.writer import file_sha256

    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != COMPLETE_MARKER}


def previous_build_files(folder: Path) -> dict[str, str | None] | None:
    """{relative path: sha256 or None (name only)} of what the build that wrote ``folder``
    wrote, or None when no build wrote it. A marker that lists its files is believed; a
    folder from an older version is trusted for its data files (the manifest's hashes) and
    the fixed top-level names only."""
    marker = _read_json(folder / COMPLETE_MARKER)
    if isinstance(marker, dict) and isinstance(marker.get("files"), dict):
        return {str(k): str(v) for k, v in marker["files"].items()}
    manifest = _read_json(folder / MANIFEST)
    if marker is None and not (isinstance(manifest, dict) and (folder / DATA_DIR).is_dir()):
        return None
    data_files = (manifest or {}).get("data_files") if isinstance(manifest, dict) else None
    known: dict[str, str | None] = {name: None for name in _LEGACY_NAMES}
    if isinstance(data_files, dict):
        known.update({str(k): str(v) for k, v in data_files.items()})
    return known


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def files_in_the_way(folder: Path, written: dict[str, str | None]) -> list[str]:
    """Everything in ``folder`` a build did not write as it is now: files it did not list,
    files changed since (their sha256 differs), links, and folders holding none of its
    files. Folders are named with a trailing ``/``."""
    from instructkit.dataset.writer import file_sha256

    in_the_way: list[str] = []
    # the folders that hold a listed file, and the layout's own (walked, never named whole)
    needed_dirs = {"/".join(p.split("/")[:i]) for p in written for i in range(1, p.count("/") + 1)}
    needed_dirs |= {DATA_DIR, EXPORTS_DIR}
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        for d in sorted(dirs):
            rel = prefix + d
            if os.path.islink(os.path.join(root, d)) or rel not in needed_dirs:
                in_the_way.append(rel + "/")  # a user's folder: named once, not walked
                dirs.remove(d)
        for f in sorted(files):
            rel = prefix + f
            path = Path(root) / f
            if rel == COMPLETE_MARKER and not path.is_symlink():
                continue
            if rel not in written or path.is_symlink() or not path.is_file():
                in_the_way.append(rel)
            elif written[rel] is not None and file_sha256(path) != written[rel]:
                in_the_way.append(f"{rel} (changed since the build)")
    return sorted(in_the_way)


def check_replaceable(out: Path) -> None:
    """Refuse, in one line, to replace a folder that holds anything the previous build did
    not write; an empty or missing folder is always fine."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    written = previous_build_files(out)
    if written is None:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
        raise OutputError(f"--out {out}: the folder exists and holds files that are not an "
                          f"instructkit dataset ({_named(entries)}); choose a new or empty folder")
    in_the_way = files_in_the_way(out, written)
    if in_the_way:
        raise OutputError(f"--out {out}: holds files the previous build did not write: "
                          f"{_named(in_the_way)}; choose another folder or move them")


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:_NAMED_IN_ERRORS])
    more = len(items) - _NAMED_IN_ERRORS
    return f"{shown} (and {more} more)" if more > 0 else shown


def check_not_reading_itself(out: Path, reads: Iterable[tuple[str, Path]]) -> None:
    """Refuse an ``--out`` that is, holds, or sits inside a folder the build reads: the next
    build would read its own output (or the swap would delete a source)."""
    target = out.resolve()
    for label, path in reads:
        try:
            src = Path(path).resolve()
        except (OSError, RuntimeError):
            continue
        if target == src:
            where = "is"
        elif target in src.parents:
            where = "holds"
        elif src.is_dir() and src in target.parents:
            where = "is inside"
        else:
            continue
        raise OutputError(f"--out {out}: {where} what {label} reads ({path}); a build must not "
                          "write where it reads; choose a folder outside it")


# -- the lock -------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """``.NAME.lock`` beside the output folder, created exclusively."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.parent / f".{out.name}.lock"
        self.held = False

    def acquire(self) -> "OutputLock":
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and self._stale(holder):
                    logger.warning("taking over a stale lock on %s (process %s on %s is gone)",
                                   self.out, holder.get("pid"), holder.get("host"))
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                who = (f"process {holder.get('pid')} on host {holder.get('host')}" if holder
                       else "another process")
                raise OutputError(f"--out {self.out}: another build is writing it ({who} holds "
                                  f"{self.path.name}); wait for it, or delete the lock file if "
                                  "that build is dead", exit_code=1) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(info, fh)
            self.held = True
            return self
        raise OutputError(f"--out {self.out}: could not take the lock {self.path}", exit_code=1)

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @staticmethod
    def _stale(holder: dict) -> bool:
        return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False


# -- the staged folder ------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2). False when the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class StagedFolder:
    """A hidden sibling folder that becomes ``out`` on ``commit()``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(3)}"

    def create(self) -> Path:
        self._recover()
        self._clean_dead_partials()
        self.path.mkdir(parents=True)
        return self.path

    def commit(self) -> None:
        if self.out.exists():
            if _exchange(self.path, self.out):
                shutil.rmtree(self.path, ignore_errors=True)
                return
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.rename(self.out, old)
            os.rename(self.path, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.path, self.out)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _recover(self) -> None:
        """A kill between the two renames of the fallback swap leaves ``.NAME.old-PID``
        and no ``NAME``: put the previous dataset back."""
        if self.out.exists():
            for old in self.out.parent.glob(f".{self.out.name}.old-*"):
                shutil.rmtree(old, ignore_errors=True)
            return
        olds = sorted(self.out.parent.glob(f".{self.out.name}.old-*"))
        if olds:
            os.rename(olds[-1], self.out)
            logger.warning("restored %s from an interrupted swap", self.out)

    def _clean_dead_partials(self) -> None:
        """Partial folders of builds that were killed (their process is gone)."""
        for p in self.out.parent.glob(f".{self.out.name}.partial-*"):
            try:
                pid = int(p.name.rsplit("-", 2)[-2])
            except ValueError:
                continue
            if not _pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)

