"""A cached artefact corrupted in place (same size, same modification time) is detected on its next use and
rebuilt or refused in one line: never used.

The memo that spares re-hashing big files is populated first (its racy window set to 0 and a clock tick let
pass), so these cases prove the memo cannot be fooled, not merely that a fresh file is hashed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench import models
from bench.errors import BenchError, DataError
from tests.support.models import build_tiny_model


def corrupt_in_place(path: Path, length: int = 1 << 20) -> None:
    """Invert up to `length` bytes in the middle of `path`, keeping its size and modification time."""
    before = path.stat()
    time.sleep(0.05)  # past a coarse clock tick, as any real later corruption is
    n = min(length, max(1, before.st_size // 4))
    with open(path, "r+b") as fh:
        fh.seek(before.st_size // 2)
        chunk = fh.read(n)
        fh.seek(before.st_size // 2)
        fh.write(bytes(255 - b for b in chunk))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture(autouse=True)
def memoise_at_once(monkeypatch):
    monkeypatch.setattr(models, "RACY_WINDOW_S", 0.0)


def _memoised(cache_dir: Path, path: Path) -> bool:
    memo = json.loads((cache_dir / "sha256-memo.json").read_text())
    return str(path.resolve()) in memo


def test_the_memo_is_not_fooled_by_a_same_size_same_mtime_rewrite(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(os.urandom(1 << 16))
    first = models.file_sha256(f, tmp_path)
    assert _memoised(tmp_path, f)
    corrupt_in_place(f)
    assert models.file_sha256(f, tmp_path) != first


def test_a_file_changed_within_the_racy_window_is_never_memoised(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "RACY_WINDOW_S", 3600.0)
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"x" * 100)
    models.file_sha256(f, tmp_path)
    assert not (tmp_path / "sha256-memo.json").exists() or not _memoised(tmp_path, f)


# ------------------------------------------------------------------ weights


def test_corrupt_minilm_weights_are_refused(tmp_path):
    """The check resolve_minilm runs first, on a copy of the real weights (the package's own stay untouched)."""
    copy = tmp_path / "model.safetensors"
    shutil.copyfile(models.minilm_dir() / "model.safetensors", copy)
    models.verify_sha256(copy, models.MINILM_SHA256, tmp_path)
    assert _memoised(tmp_path, copy)
    corrupt_in_place(copy)
    with pytest.raises(BenchError, match="checksum mismatch") as info:
        models.verify_sha256(copy, models.MINILM_SHA256, tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("victim", ["model.safetensors", "tokenizer.json", "config.json"])
def test_a_corrupt_file_in_a_model_recbench_saved_is_refused(tmp_path, victim):
    directory = build_tiny_model(tmp_path / "tiny", layers=1, hidden=16, heads=2, intermediate=32)
    models.resolve_model(str(directory), cache_dir=tmp_path)
    corrupt_in_place(directory / victim, length=64)
    with pytest.raises(BenchError, match=f"{victim} does not match") as info:
        models.resolve_model(str(directory), cache_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_a_corrupt_cost_only_model_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setitem(models.COST_ONLY, "tiny-cost-only", models.CostOnlyArch("bert", 1, 16, 2, 32, "tiny"))
    first = models.build_cost_only("tiny-cost-only", cache_dir=tmp_path)
    weights = first.path / "model.safetensors"
    corrupt_in_place(weights)
    again = models.build_cost_only("tiny-cost-only", cache_dir=tmp_path)
    assert again.weights_sha256 == first.weights_sha256  # rebuilt from its seed, the corrupt bytes gone
    assert models.check_files(again.path, models.read_manifest(again.path)[models.FILES_KEY], tmp_path) is None


# ------------------------------------------------------------------ ONNX, int8, distilled


@pytest.fixture()
def tiny(tmp_path):
    directory = build_tiny_model(tmp_path / "tiny", layers=2, hidden=32, heads=2, intermediate=64)
    return models.resolve_model(str(directory), cache_dir=tmp_path / "cache"), tmp_path / "cache"


TEXTS = [
    "Toy Story (1995) Animation",
    "GoldenEye (1995) Action",
    "Four Rooms (1995) Thriller",
    "Copycat (1995)",
    "Twelve Monkeys (1995) Sci-Fi",
    "Babe (1995) Comedy",
    "Dead Man Walking",
    "Richard III (1995) War",
    "Seven (1995) Crime",
    "Get Shorty (1995) Comedy",
]


@pytest.mark.parametrize("variant", ["onnx", "onnx-int8"])
def test_a_corrupt_onnx_file_is_rebuilt_not_used(tiny, variant):
    from bench.variants import build_encoder

    model, cache = tiny
    first = build_encoder(model, variant, threads=1, cache_dir=cache)
    reference = first.encode(TEXTS)
    file = Path(first.preparation.notes[variant]["file"])
    build_encoder(model, variant, threads=1, cache_dir=cache)  # a reuse: the memo now holds the file's hash
    assert _memoised(cache, file)
    corrupt_in_place(file)
    again = build_encoder(model, variant, threads=1, cache_dir=cache)
    notes = again.preparation.notes[variant]
    reason = notes.get("quantize_rebuilt_because" if variant == "onnx-int8" else "export_rebuilt_because")
    assert reason and "does not match" in reason
    np.testing.assert_allclose(again.encode(TEXTS), reference, atol=1e-5)


def test_an_export_without_recorded_checksums_is_rebuilt(tiny):
    """An export made by an older recbench cannot be verified: it is made again, not trusted."""
    from bench.variants import build_encoder

    model, cache = tiny
    first = build_encoder(model, "onnx", threads=1, cache_dir=cache)
    meta_file = Path(first.preparation.notes["onnx"]["file"]).parent / "recbench-onnx.json"
    meta = json.loads(meta_file.read_text())
    del meta[models.FILES_KEY]
    meta_file.write_text(json.dumps(meta))
    again = build_encoder(model, "onnx", threads=1, cache_dir=cache)
    assert "no file checksums" in again.preparation.notes["onnx"]["export_rebuilt_because"]


def test_a_corrupt_distilled_student_is_trained_again(tiny):
    from bench.variants.distilled import DistilSettings, distil

    model, cache = tiny
    settings = DistilSettings(layers=1, epochs=1, batch_size=4, heldout_share=0.2)
    student, prep = distil(model, TEXTS, settings, cache_dir=cache)
    assert distil(model, TEXTS, settings, cache_dir=cache)[1].notes["reused_from_cache"] is True
    corrupt_in_place(student.path / "model.safetensors")
    again, prep2 = distil(model, TEXTS, settings, cache_dir=cache)
    assert prep2.notes["reused_from_cache"] is False and "does not match" in prep2.notes["rebuilt_because"]
    assert models.check_files(again.path, models.read_manifest(again.path)[models.FILES_KEY], cache) is None


# ------------------------------------------------------------------ dataset


def _ml100k_wheel() -> Path:
    from bench.data import movielens

    wheel = movielens.cache_dir() / movielens.RECBOLE_WHEEL_NAME
    if not wheel.is_file():
        pytest.skip("MovieLens-100K is not in the cache here (`recbench data fetch ml-100k` puts it there)")
    return wheel


def test_a_corrupt_cached_archive_is_refused(tmp_path):
    from bench.data import movielens

    data_dir = tmp_path / "data"
    (data_dir / "ml-100k").mkdir(parents=True)
    copy = data_dir / "ml-100k" / movielens.RECBOLE_WHEEL_NAME
    shutil.copyfile(_ml100k_wheel(), copy)
    movielens.load(data_dir, allow_download=False)
    corrupt_in_place(copy, length=4096)
    with pytest.raises(DataError, match="corrupt"):
        movielens.load(data_dir, allow_download=False)


@pytest.mark.parametrize("victim", ["ml-100k.inter", "ml-100k.item"])
def test_a_corrupt_local_copy_is_refused_item_text_included(tmp_path, victim):
    from bench.data import movielens

    source = tmp_path / "source"
    source.mkdir()
    with zipfile.ZipFile(_ml100k_wheel()) as zf:
        for name in ("ml-100k.inter", "ml-100k.item"):
            (source / name).write_bytes(zf.read(movielens.RECBOLE_MEMBER_PREFIX + name))
    data_dir = tmp_path / "data"
    local = movielens.fetch(data_dir, source)
    movielens.load(data_dir, allow_download=False)
    corrupt_in_place(local / victim, length=64)
    with pytest.raises(DataError, match=f"{victim} is corrupt") as info:
        movielens.load(data_dir, allow_download=False)
    assert "fetch ml-100k --from" in str(info.value)
