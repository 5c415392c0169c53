"""Atomic writes: the target holds the old content or the new, never a part; nothing temporary is left behind."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from bench.atomic_io import atomic_write_bytes, atomic_write_text
from bench.errors import DiskFullError


def _enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_replaces_the_file_whole_with_the_usual_permissions(tmp_path):
    target = tmp_path / "deep" / "out.json"  # missing parents are made
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second \xe2\x9c\x93")
    assert target.read_text(encoding="utf-8") == "second \u2713"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_a_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "memo.json"
    atomic_write_text(target, "old")
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(DiskFullError) as info:
        atomic_write_text(target, "x" * 2**20)
    assert str(target) in str(info.value) and "1.00 MiB needed" in str(info.value) and "\n" not in str(info.value)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["memo.json"]


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    def interrupted(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
