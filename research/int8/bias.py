"""Bias correction of an int8 model: each convolution's int32 bias moved by its channels' mean rounding error.

Why: rounding every activation to the int8 grid moves the mean of each channel a little, and over
the trunk's 23 convolutions these moves add up to a difference from the float network that is
common to all scans (`research/int8/int8_floor.py`). The heads, fitted on the int8 features, absorb it,
but the int8 features then drift further from the float network's than rounding needs. Here each
convolution's output is compared with the same network's in float TFLite on the calibration
images, and its bias moved so that the means agree where the float output is not clipped by its
activation, shallowest convolutions first (each one measured with those before it corrected).

Not what ships (nothing in `edge-train` or `edge-convert` calls it): on the network shipped before
the cell head had its hidden layer (97ab464667fc), with the heads refitted on the same folds, it raised
float-vs-int8 label agreement from 0.798 to 0.895 and moved the out-of-fold figures only within
their noise (`python research/int8/bias_correction.py ../shared/mias`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.runtime import make_interpreter

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
IMAGES = 64
"""Calibration images the correction measures on (each of the trunk's 23 convolution depths runs
the int8 model over them once: about a minute for the shipped network on the 2-core machine)."""


def correct_biases(int8: bytes, floating: bytes, images: np.ndarray) -> bytes:
    """`int8` with its convolutions' biases corrected against `floating` (the same network, float
    TFLite) on the first `IMAGES` of the prepared uint8 `images` (N, S, S)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    images = np.asarray(images[:IMAGES])
    quantized = make_interpreter(int8, preserve_all_tensors=True)
    pairs = _pairs(quantized, make_interpreter(floating, preserve_all_tensors=True))
    details = {d["index"]: d for d in quantized.get_tensor_details()}  # scales: the correction moves biases only
    reference = _activations(floating, [f["outputs"][0] for _, f, _ in pairs], images)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(int8))
    tensors, content = model.subgraphs[0].tensors, int8
    for depth in sorted({depth for _, _, depth in pairs}):
        wave = [(q, f) for q, f, d in pairs if d == depth]
        got = _activations(content, [q["outputs"][0] for q, _ in wave], images)
        for q, f in wave:
            expected = reference[f["outputs"][0]]
            active = (expected > 0) & (expected < expected.max())  # where a bias moves the output (not clipped)
            error = ((got[q["outputs"][0]] - expected) * active).sum(axis=(0, 1, 2)) / np.maximum(active.sum(axis=(0, 1, 2)), 1)
            x, w, b = (int(i) for i in q["inputs"][:3])
            step = details[x]["quantization"][0] * details[w]["quantization_parameters"]["scales"]
            bias = np.frombuffer(bytes(model.buffers[tensors[b].buffer].data), np.int32).astype(np.int64)
            moved = (bias - np.round(error / step).astype(np.int64)).astype(np.int32)
            if sum(t.buffer == tensors[b].buffer for t in tensors) > 1:  # the converter shares equal constants
                model.buffers.append(schema.BufferT())
                tensors[b].buffer = len(model.buffers) - 1
            model.buffers[tensors[b].buffer].data = np.frombuffer(moved.tobytes(), np.uint8)
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return content


def _pairs(int8: Any, floating: Any) -> list[tuple[dict, dict, int]]:
    """(int8 op, float op, depth) of every convolution, paired in graph order and checked by their weights.

    Depth: how many convolutions lie on the longest path from the input to it, so that the
    convolutions of one depth can be corrected in one pass."""
    q_ops, f_ops = _convolutions(int8), _convolutions(floating)
    if [q[0]["op_name"] for q in q_ops] != [f[0]["op_name"] for f in f_ops]:
        raise EdgeError("bias correction: the int8 and float models do not have the same convolutions")
    biases = [int(q["inputs"][2]) for q, _ in q_ops]
    if len(set(biases)) != len(biases):
        raise EdgeError("bias correction: two convolutions read one bias tensor, which cannot be corrected for both")
    for (q, _), (f, _) in zip(q_ops, f_ops):
        kernel = floating.get_tensor(int(f["inputs"][1]))
        detail = next(d for d in int8.get_tensor_details() if d["index"] == int(q["inputs"][1]))
        params = detail["quantization_parameters"]
        shape = [1] * kernel.ndim
        shape[params["quantized_dimension"]] = -1
        dequantized = int8.get_tensor(int(q["inputs"][1])) * params["scales"].reshape(shape)
        if dequantized.shape != kernel.shape or np.abs(dequantized - kernel).max() > params["scales"].max():
            raise EdgeError(f"bias correction: int8 convolution {q['index']} does not hold its float twin's weights")
    return [(q, f, depth) for (q, depth), (f, _) in zip(q_ops, f_ops)]


def _convolutions(interpreter: Any) -> list[tuple[dict, int]]:
    """(op, depth) of each convolution, in the graph's order."""
    ops = interpreter._get_ops_details()
    producer = {int(t): op for op in ops for t in op["outputs"]}
    depths: dict[int, int] = {}

    def depth(tensor: int) -> int:  # convolutions on the longest path from the input to `tensor`
        if tensor not in depths:
            op = producer.get(tensor)
            upstream = max((depth(int(t)) for t in op["inputs"] if t >= 0), default=0) if op else 0
            depths[tensor] = upstream + (op is not None and op["op_name"] in CONVOLUTIONS)
        return depths[tensor]

    return [(op, depth(int(op["outputs"][0]))) for op in ops if op["op_name"] in CONVOLUTIONS]


def _activations(content: bytes, tensors: list[int], images: np.ndarray) -> dict[int, np.ndarray]:
    """The values (dequantized) of `tensors` over `images`, with TFLite's builtin kernels."""
    interpreter = make_interpreter(content, preserve_all_tensors=True)
    (detail,) = interpreter.get_input_details()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    out: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
    for image in images:
        interpreter.set_tensor(detail["index"], np.asarray(image, dtype=detail["dtype"])[None, :, :, None])
        interpreter.invoke()
        for t in tensors:
            value = interpreter.get_tensor(t).astype(np.float32)
            scale, zero = details[t]["quantization"]
            out[t].append((value - zero) * scale if scale else value)
    return {t: np.concatenate(v) for t, v in out.items()}
