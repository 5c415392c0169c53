"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The text or bytes go to a temporary file beside the target, are flushed to disk, then renamed over it
(`os.replace` is atomic within one filesystem). A full disk raises the one-line DiskFullError naming the path
and the space needed, and leaves the previous file, if any, as it was. This module sits below everything else
in the package (it imports only bench.errors), so results, models and caches can all share it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from bench.errors import disk_full


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically; see the module docstring."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; see the module docstring."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, len(data)) from None
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a written file is meant to be shared like any other
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # never leave the temporary file behind, whatever stopped us (re-raised)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, len(data)) from None
        raise
