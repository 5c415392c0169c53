"""`onnx-int8-static` on a tiny random model, through the real export / pre-process / calibrate / quantise path:
a request's embedding does not depend on its batch neighbours, the chosen linear layers run int8 and only
they read quantised activations, SmoothQuant leaves the float result unchanged, the cached artefact is verified
on use and published atomically, and the variant refuses to run uncalibrated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.variants import build_encoder, parse_variant, wants_calibration

pytest.importorskip("onnxruntime")

# calibration texts stand in for a train split's item texts and user profiles
CALIBRATION = [
    f"Movie {i} ({1960 + i % 40}) " + ("Drama|Comedy" if i % 2 else "Action|Thriller") for i in range(80)
] + [f"liked recently: Movie {i}; Movie {i + 1}; Movie {i + 2}" for i in range(40)]


def _alone_vs_batched(enc, texts: list[str]) -> float:
    batched = enc.encode(texts, batch_size=len(texts))
    alone = np.stack([enc.encode([t], batch_size=1)[0] for t in texts])
    return float(np.abs(alone - batched).max())


def test_a_requests_embedding_is_identical_alone_and_batched_under_static_int8(
    tiny_model, model_cache_dir, tiny_texts, record_property
):
    static = build_encoder(
        tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir, calibration_texts=CALIBRATION
    )
    assert _alone_vs_batched(static, tiny_texts) <= 1e-6
    # how far the dynamic variants move a request with its batch (recorded, not gated: that is their nature)
    for variant in ("int8", "onnx-int8"):
        enc = build_encoder(tiny_model, variant, threads=1, cache_dir=model_cache_dir)
        record_property(f"{variant}_alone_vs_batched_max_abs", _alone_vs_batched(enc, tiny_texts))


def _int8_matmul_weights(graph) -> list[tuple[int, ...]]:
    """Weight shapes of the MatMuls that run int8 (they read a dequantised initializer)."""
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    dq_weight = {
        n.output[0]: inits[n.input[0]] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }
    return [
        next(dq_weight[i] for i in n.input if i in dq_weight)
        for n in graph.node
        if n.op_type == "MatMul" and any(i in dq_weight for i in n.input)
    ]


def test_static_int8_runs_the_chosen_linear_layers_int8_and_the_rest_in_float(tiny_model, model_cache_dir):
    import onnx

    enc = build_encoder(
        tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir, calibration_texts=CALIBRATION
    )
    notes = enc.preparation.notes["onnx-int8-static"]
    graph = onnx.load(notes["file"]).graph
    # the tiny BERT (2 layers, hidden 32, FFN 64): per layer the attention-out (32, 32), FFN-up (32, 64) and
    # FFN-down (64, 32) run int8; query/key/value and the attention products stay float, inside one fused
    # Attention kernel per layer whose (32, 96) query/key/value weight is a float initializer
    assert sorted(_int8_matmul_weights(graph)) == [(32, 32), (32, 32), (32, 64), (32, 64), (64, 32), (64, 32)]
    inits = {i.name: i for i in graph.initializer}
    attention = [n for n in graph.node if n.op_type == "Attention"]
    assert len(attention) == 2 and all(
        tuple(inits[n.input[1]].dims) == (32, 96) and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT
        for n in attention
    )
    assert notes["settings"]["float_matmuls"] == ["attention", "qkv"]
    assert notes["graph_edits"]["fused_Attention"] == 2
    # the two fusions whose ONNX Runtime CPU kernels are slower than the operators they replace are not made
    assert not any(n.op_type in ("SkipLayerNormalization", "BiasGelu") for n in graph.node)
    assert notes["graph_edits"]["smoothed_tensors"] == 2  # each layer's FFN input
    assert not any(
        n.op_type == "QuantizeLinear"
        and any(o.op_type in ("LayerNormalization", "Softmax") for o in graph.node if n.output[0] in o.input)
        for n in graph.node
    )  # float around LN/softmax
    assert notes["n_calibration_texts"] == len(CALIBRATION)


def test_only_int8_layers_read_quantised_activations(tiny_model, model_cache_dir):
    """The residual path (Add, LayerNorm) and float MatMuls read the float tensor, never its 8-bit copy."""
    import onnx

    enc = build_encoder(
        tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir, calibration_texts=CALIBRATION
    )
    graph = onnx.load(enc.preparation.notes["onnx-int8-static"]["file"]).graph
    inits = {i.name for i in graph.initializer}
    activation_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits}
    weight_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    readers = [n for n in graph.node if activation_dq & set(n.input)]
    assert readers and all(n.op_type == "MatMul" and weight_dq & set(n.input) for n in readers)


def _toy_block(seed: int = 0):
    """X -> Q/K/V (square, shared input) -> scores (act x act) -> attention-out -> FFN up -> FFN down."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = {"wq": (8, 8), "wk": (8, 8), "wv": (8, 8), "wo": (8, 8), "wup": (8, 16), "wdown": (16, 8)}
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name) for name, shape in w.items()]
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="kt"),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
        helper.make_node("MatMul", ["s", "v"], ["c"], name="context"),
        helper.make_node("MatMul", ["c", "wo"], ["o"], name="o"),
        helper.make_node("Add", ["o", "x"], ["h"], name="residual"),
        helper.make_node("MatMul", ["h", "wup"], ["u"], name="up"),
        helper.make_node("MatMul", ["u", "wdown"], ["y"], name="down"),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_linear_layers_are_told_apart_by_shape_and_by_what_feeds_them():
    from bench.variants.onnx_static import float_matmuls
    from bench.variants.static_graph import matmul_kinds

    model = _toy_block()
    assert matmul_kinds(model.graph) == {
        "q": "qkv",
        "k": "qkv",
        "v": "qkv",
        "scores": "attention",
        "context": "attention",
        "o": "attention-out",
        "up": "ffn-up",
        "down": "ffn-down",
    }
    assert float_matmuls(model.graph, ("attention", "ffn-down")) == ["scores", "context", "down"]
    with pytest.raises(ConfigError, match="unknown MatMul kinds"):
        float_matmuls(model.graph, ("ffn-middle",))


def test_smoothing_moves_activation_outliers_into_the_weights_without_changing_the_float_result():
    import onnxruntime as ort

    from bench.variants.static_graph import smooth

    x = np.random.default_rng(1).normal(size=(3, 5, 8)).astype(np.float32)
    x[..., 2] *= 40.0  # one outlier channel, as LayerNorm outputs have

    def run(model, tensors=("y",)):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(list(tensors), {"x": x})

    def absmax(model, tensors):
        from onnx import TensorProto, helper

        probe = type(model)()
        probe.CopyFrom(model)
        probe.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in tensors)
        return {t: np.abs(v).reshape(-1, v.shape[-1]).max(0) for t, v in zip(tensors, run(probe, tensors))}

    before = _toy_block()
    after = _toy_block()
    assert smooth(after, ("qkv",), 0.5, absmax) == 1  # q, k and v share one input: smoothed once
    np.testing.assert_allclose(run(after)[0], run(before)[0], rtol=1e-4, atol=1e-3)
    smoothed = absmax(after, ["x_recbench_smooth"])["x_recbench_smooth"]
    raw = np.abs(x).reshape(-1, 8).max(0)
    # the outlier channel's share of the range the 8-bit scale must cover shrinks
    assert smoothed[2] / np.median(smoothed) < raw[2] / np.median(raw) / 3


def test_the_residual_add_reads_the_float_tensor_and_the_int8_matmul_its_quantised_copy():
    """ONNX Runtime's QDQ quantiser hands every consumer of a quantised tensor its dequantised copy; after
    float_residuals only the int8 MatMul (it also reads a dequantised weight) still does."""
    from onnx import TensorProto, helper, numpy_helper

    from bench.variants.static_graph import float_residuals

    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
        numpy_helper.from_array(np.ones((4, 4), np.int8), "w_q"),
        numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.ones((4, 4), np.float32), "wf"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["x_q"], name="q"),
        helper.make_node("DequantizeLinear", ["x_q", "s", "z"], ["x_dq"], name="dq"),
        helper.make_node("DequantizeLinear", ["w_q", "ws", "wz"], ["w_dq"], name="wdq"),
        helper.make_node("MatMul", ["x_dq", "w_dq"], ["y"], name="int8"),
        helper.make_node("MatMul", ["x_dq", "wf"], ["y_float"], name="kept_float"),
        helper.make_node("Add", ["y", "x_dq"], ["h"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 4])],
        inits,
    )
    assert float_residuals(graph) == 2
    inputs = {n.name: list(n.input) for n in graph.node}
    assert inputs["int8"] == ["x_dq", "w_dq"]
    assert inputs["kept_float"] == ["x", "wf"] and inputs["residual"] == ["y", "x"]


def test_the_cached_artefact_is_verified_on_use_and_rebuilt_when_corrupted(tiny_model, model_cache_dir):
    first = build_encoder(
        tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir, calibration_texts=CALIBRATION
    )
    file = first.preparation.notes["onnx-int8-static"]["file"]
    again = build_encoder(
        tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir, calibration_texts=CALIBRATION
    )
    assert again.preparation.notes["onnx-int8-static"]["quantize_reused_from_cache"] is True
    assert again.preparation.reused_s == pytest.approx(again.preparation.seconds)
    with open(file, "r+b") as fh:  # flip bytes in place: same size, different content
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    rebuilt = build_encoder(
        tiny_model, "onnx-int8-static", threads=1, cache_dir=model_cache_dir, calibration_texts=CALIBRATION
    )
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


def test_an_encoder_the_optimizer_cannot_fuse_is_quantised_unfused(tmp_path):
    """No attention block the transformer optimizer recognises: the graph goes through the plain pre-processing,
    every linear layer still there to be told apart and quantised."""
    import onnx

    from bench.variants.onnx_static import _optimise

    source, target = tmp_path / "toy.onnx", tmp_path / "optimised.onnx"
    onnx.save(_toy_block(), str(source))
    assert _optimise(source, target) == {}  # nothing fused
    optimised = onnx.load(str(target))
    assert sum(n.op_type == "MatMul" for n in optimised.graph.node) == 8
    assert not any(n.domain == "com.microsoft" for n in optimised.graph.node)
