"""Graph edits around `onnx-int8-static`'s quantiser: which linear layers are which, SmoothQuant, float residuals.

All three work on the ONNX graph of a BERT-family encoder as exported (one MatMul per linear layer, its weight
an initializer of shape (in, out)) and stay architecture-neutral: layers are told apart by their weight's shape
and by what feeds them, never by node names.

- `matmul_kinds`: "attention" (both inputs activations: scores and context), "qkv" (square weight whose input
  also feeds other linear layers: the query/key/value projections), "attention-out" (square weight, input fed
  to it alone), "ffn-up" (weight wider than tall), "ffn-down" (taller than wide, fed by the GELU output).
- `smooth`: SmoothQuant (Xiao et al., 2023). A transformer's LayerNorm outputs carry a few channels many times
  larger than the rest; one per-tensor activation scale then spends its 8 bits on them. For a linear layer
  X W, X[:, c] / s_c and W[c, :] * s_c give the same product in float, with s_c = amax_c^a / wmax_c^(1-a)
  moving part of the channel's range into the (per-channel quantised) weight. The division is a constant Mul
  on the int8 branch only (the residual keeps X), so every scale stays fixed and a request's result still
  does not depend on its batch. (Folding the Mul into a per-channel QuantizeLinear was measured and
  rejected: ONNX Runtime 1.32's per-axis QuantizeLinear on CPU took half of the profiled run time on
  MiniLM, where the Mul plus the per-tensor QuantizeLinear cost about 5%.)
- `float_residuals`: ONNX Runtime's QDQ quantiser replaces a quantised tensor by its dequantised copy for
  every consumer, so the residual Add after a LayerNorm would carry the 8-bit rounding error into every later
  layer. Non-MatMul consumers are pointed back at the float tensor; only the int8 MatMuls read the quantised one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

KINDS = ("attention", "qkv", "attention-out", "ffn-up", "ffn-down")
SMOOTH_SUFFIX = "_recbench_smooth"


def matmul_kinds(graph: Any) -> dict[str, str]:
    """{MatMul node name: kind} for every MatMul of `graph` (kinds: see the module docstring)."""
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    linear_inputs: dict[str, int] = {}
    for n in graph.node:
        if n.op_type == "MatMul" and any(i in weights for i in n.input):
            for i in n.input:
                if i not in weights:
                    linear_inputs[i] = linear_inputs.get(i, 0) + 1
    kinds = {}
    for n in graph.node:
        if n.op_type != "MatMul":
            continue
        shape = next((weights[i] for i in n.input if i in weights), None)
        if shape is None or len(shape) != 2:
            kinds[n.name] = "attention"
        elif shape[0] > shape[1]:
            kinds[n.name] = "ffn-down"
        elif shape[0] < shape[1]:
            kinds[n.name] = "ffn-up"
        else:
            x = next(i for i in n.input if i not in weights)
            kinds[n.name] = "qkv" if linear_inputs.get(x, 0) > 1 else "attention-out"
    return kinds


def _activation_and_weight(node: Any, weights: dict[str, Any]) -> tuple[str, str]:
    w = next(i for i in node.input if i in weights)
    return next(i for i in node.input if i != w), w


def smooth(
    model: Any, kinds: Sequence[str], alpha: float, channel_absmax: Callable[[Any, list[str]], dict[str, np.ndarray]]
) -> int:
    """SmoothQuant the linear layers of `kinds` in `model` (an onnx ModelProto, edited in place); returns how
    many activation tensors were smoothed. `channel_absmax(model, tensors)` gives each tensor's per-channel
    (last axis) absolute maximum over the calibration data, measured on the float graph."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    chosen = matmul_kinds(graph)
    consumers: dict[str, list[tuple[Any, str]]] = {}
    for n in graph.node:
        if chosen.get(n.name) in kinds:
            x, w = _activation_and_weight(n, weights)
            consumers.setdefault(x, []).append((n, w))
    if not consumers:
        return 0
    amax = channel_absmax(model, list(consumers))
    new_nodes = {}
    for x, layers in consumers.items():
        w_amax = np.max([np.abs(numpy_helper.to_array(weights[w])).max(axis=1) for _, w in layers], axis=0)
        # floors keep a dead channel (all zeros) from producing 0 or inf
        scale = (np.maximum(amax[x], 1e-5) ** alpha / np.maximum(w_amax, 1e-5) ** (1 - alpha)).astype(np.float32)
        inverse = x + SMOOTH_SUFFIX + "_inverse"
        graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse))
        smoothed = x + SMOOTH_SUFFIX
        new_nodes[x] = helper.make_node("Mul", [x, inverse], [smoothed], name=smoothed)
        for node, w in layers:
            scaled = numpy_helper.to_array(weights[w]) * scale[:, None]
            weights[w].CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), w))
            for i, name in enumerate(node.input):
                if name == x:
                    node.input[i] = smoothed
    _insert_after_producers(graph, new_nodes)
    return len(new_nodes)


def _insert_after_producers(graph: Any, new_nodes: dict[str, Any]) -> None:
    """Keep the node list topologically sorted: each new node right after the node making its input."""
    inputs = {i.name for i in graph.input}
    ordered = [node for x, node in new_nodes.items() if x in inputs]
    for n in graph.node:
        ordered.append(n)
        ordered.extend(new_nodes[o] for o in n.output if o in new_nodes)
    del graph.node[:]
    graph.node.extend(ordered)


def float_residuals(graph: Any) -> int:
    """Point every consumer of a dequantised activation that is not an int8 layer (residual Add, LayerNorm,
    a MatMul kept in float, ...) back at the float tensor the QuantizeLinear read. An int8 layer is a node
    that also reads a dequantised initializer (its weight). Returns how many inputs were rewired."""
    initializers = {i.name for i in graph.initializer}
    quantised_from = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    float_of = {
        n.output[0]: quantised_from[n.input[0]]
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in quantised_from
    }
    weight_of = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers}
    rewired = 0
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or any(i in weight_of for i in n.input):
            continue
        for i, name in enumerate(n.input):
            if name in float_of:
                n.input[i] = float_of[name]
                rewired += 1
    return rewired


__all__ = ["KINDS", "float_residuals", "matmul_kinds", "smooth"]
