"""User-facing errors: one line naming the problem and what to do."""


class BenchError(Exception):
    """An error caused by input the user can fix. The CLI prints it as one line and exits non-zero.

    The message must name the problem *and* what to do about it.
    """

    exit_code = 2


class DataError(BenchError):
    """A dataset file is missing, corrupt, or malformed."""


class ConfigError(BenchError):
    """A scenario, option or setting is invalid."""


class DiskFullError(BenchError):
    """A write found no space left (ENOSPC/EDQUOT). What was already written stays valid (writes are atomic)."""


def disk_full(path, needed_bytes: int) -> DiskFullError:
    """The one-line error for a write of `needed_bytes` to `path` that ran out of space."""
    import shutil
    from pathlib import Path

    try:
        free = shutil.disk_usage(Path(path).parent).free
        free_text = f"{free / 2**20:,.1f} MiB free"
    except OSError:
        free_text = "free space unknown"
    return DiskFullError(
        f"no space left on the device to write {path} ({needed_bytes / 2**20:,.2f} MiB needed, "
        f"{free_text}); free at least that much there (or write elsewhere with --out) and run "
        "again: files already written are complete and valid"
    )
