"""One lock per cached artefact, so that two processes never prepare the same file at once.

Exports, quantised copies, distilled students and cost-only models are made once and shared by every later
cell and every concurrent run on the machine. Whoever takes the lock checks the cache, and builds only when
it finds nothing valid; whoever waited finds the finished artefact. The lock is an advisory `flock` on a
small file beside the artefact: the kernel drops it when its holder exits, however it exits, so a killed
run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX; elsewhere the private staging directories alone keep writers apart
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(artefact: Path) -> Path:
    """`<dir>/.<name>.lock` beside the artefact (a file or a directory)."""
    artefact = Path(artefact)
    return artefact.parent / f".{artefact.name}.lock"


@contextlib.contextmanager
def artefact_lock(artefact: Path) -> Iterator[None]:
    """Hold the artefact's exclusive lock for the duration of the block (blocks while another holds it)."""
    path = lock_path(artefact)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
