"""Building a folder beside its destination and swapping it into place, under a lock.

- ``OutputLock``: one build at a time per output folder. The lock file sits beside the
  folder (the folder itself is replaced) and names the process and host that hold it; a lock
  whose process is gone (same host) is stale and taken over.
- ``StagedFolder``: a hidden sibling ``.NAME.partial-PID-XXXX`` to write into; ``commit()``
  puts it in place of ``NAME`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``, else two
  renames with recovery), so the previous dataset survives any failure or kill before that.
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
from pathlib import Path

from instructkit._exceptions import OutputError

logger = logging.getLogger("instructkit")

__all__ = ["OutputLock", "StagedFolder", "check_output_dir"]


def check_output_dir(out: Path, is_dataset_folder) -> None:
    """Refuse an output path we must not replace: a file, an unwritable parent, or a folder
    with other content (replacing it would delete someone's files)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create its parent folder ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: its folder {parent} is not writable")
    if out.is_dir() and any(out.iterdir()) and not is_dataset_folder(out):
        raise OutputError(f"--out {out}: the folder exists and holds files that are not an "
                          "instructkit dataset; choose a new or empty folder")


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

