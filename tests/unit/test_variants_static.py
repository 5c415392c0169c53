"""`onnx-int8-static` on a tiny random model, through the real export / pre-process / calibrate / quantise path:
a request's embedding does not depend on its batch neighbours, the cached artefact is verified on use and
published atomically, and the variant refuses to run uncalibrated."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.variants import build_encoder, parse_variant, wants_calibration

pytest.importorskip("onnxruntime")

# calibration texts stand in for a train split's item texts and user profiles
CALIBRATION = [f"Movie {i} ({1960 + i % 40}) " + ("Drama|Comedy" if i % 2 else "Action|Thriller") for i in range(80)] + \
    [f"liked recently: Movie {i}; Movie {i + 1}; Movie {i + 2}" for i in range(40)]


def _alone_vs_batched(enc, texts: list[str]) -> float:
    batched = enc.encode(texts, batch_size=len(texts))
    alone = np.stack([enc.encode([t], batch_size=1)[0] for t in texts])
    return float(np.abs(alone - batched).max())


def test_a_requests_embedding_is_identical_alone_and_batched_under_static_int8(
        tiny_model, model_cache_dir, tiny_texts, record_property):
    static = build_encoder(tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir,
                           calibration_texts=CALIBRATION)
    assert _alone_vs_batched(static, tiny_texts) <= 1e-6
    # how far the dynamic variants move a request with its batch (recorded, not gated: that is their nature)
    for variant in ("int8", "onnx-int8"):
        enc = build_encoder(tiny_model, variant, threads=1, cache_dir=model_cache_dir)
        record_property(f"{variant}_alone_vs_batched_max_abs", _alone_vs_batched(enc, tiny_texts))


def test_static_int8_runs_int8_matmuls_and_keeps_the_chosen_ones_in_float(tiny_model, model_cache_dir):
    import onnx

    enc = build_encoder(tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir,
                        calibration_texts=CALIBRATION)
    notes = enc.preparation.notes["onnx-int8-static"]
    graph = onnx.load(notes["file"]).graph
    quantised = [n for n in graph.node if n.op_type == "MatMul" and any(p.op_type == "DequantizeLinear"
                 for p in graph.node if p.output and p.output[0] in n.input)]
    assert quantised, "no MatMul reads a dequantised input: nothing was quantised"
    assert not any(n.op_type in ("QuantizeLinear",) and any(o.op_type in ("LayerNormalization", "Softmax")
                   for o in graph.node if n.output[0] in o.input) for n in graph.node)  # float around LN/softmax
    assert notes["settings"]["float_matmuls"] == ["attention", "ffn-down"]
    assert notes["n_calibration_texts"] == len(CALIBRATION)


def test_the_cached_artefact_is_verified_on_use_and_rebuilt_when_corrupted(tiny_model, model_cache_dir):
    first = build_encoder(tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir,
                          calibration_texts=CALIBRATION)
    file = first.preparation.notes["onnx-int8-static"]["file"]
    again = build_encoder(tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir,
                          calibration_texts=CALIBRATION)
    assert again.preparation.notes["onnx-int8-static"]["quantize_reused_from_cache"] is True
    assert again.preparation.reused_s == pytest.approx(again.preparation.seconds)
    with open(file, "r+b") as fh:  # flip bytes in place: same size, different content
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    rebuilt = build_encoder(tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir,
                            calibration_texts=CALIBRATION)
    notes = rebuilt.preparation.notes["onnx-int8-static"]
    assert notes["quantize_reused_from_cache"] is False and "failed its sha256 check" in notes["rebuilt"]
    from pathlib import Path
    meta = json.loads((Path(notes["file"]).parent / "recbench-static.json").read_text())
    assert meta["sha256"] == notes["sha256"]
    # nothing half-built is left beside the published directory
    parent = model_cache_dir / "onnx-static"
    assert not [p for p in parent.iterdir() if ".tmp" in p.name]


def test_static_int8_without_calibration_texts_says_what_to_do(tiny_model, model_cache_dir):
    with pytest.raises(ConfigError, match="calibration texts"):
        build_encoder(tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir)


def test_the_variant_composes_and_asks_for_calibration():
    assert parse_variant("distilled+onnx-int8-static") == (True, "onnx-int8-static")
    assert wants_calibration("onnx-int8-static") and wants_calibration("distilled+onnx-int8-static")
    assert not wants_calibration("onnx-int8")
