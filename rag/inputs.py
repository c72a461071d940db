"""Files a user names on the command line (``--config``, ``--batch``), read so that they end.

``/dev/zero`` never ends and a FIFO may never be written: only a regular file is read, opened
without blocking, and only up to a size cap, so a wrong path is one line instead of a hang.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import RagError


class InputFileError(RagError, ValueError):
    """A named input file that cannot be used; the message is one line naming it."""


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path`` (``what`` names it in errors: "settings file", "batch file")."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"cannot read {what} {path}: not a regular file (a folder, FIFO or device?)")
        if info.st_size > limit:
            raise InputFileError(f"cannot read {what} {path}: larger than {limit:,} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we read
        raise InputFileError(f"cannot read {what} {path}: larger than {limit:,} bytes")
    return data
