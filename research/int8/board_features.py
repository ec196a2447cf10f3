"""The studies' one loop over scans through a quantized model: its cell features, as the board dequantizes them."""

from __future__ import annotations

import numpy as np


def model_features(content: bytes, images: np.ndarray, kernels: str = "builtin", positions=None) -> list[np.ndarray]:
    """Each feature output of the quantized model `content` over prepared uint8 `images` (N, S, S), dequantized.

    `positions`: indices into the interpreter's outputs, in the order wanted (a manifest's
    positions); None: every output, the largest (the finest scale) first."""
    from edge.inference.classifier import Quantization, model_input
    from edge.runtime import make_interpreter

    interpreter = make_interpreter(content, threads=2, kernels=kernels)
    detail = interpreter.get_input_details()[0]
    every = interpreter.get_output_details()
    details = ([every[p] for p in positions] if positions is not None
               else sorted(every, key=lambda d: -int(np.prod(d["shape"]))))
    out = [np.zeros((len(images), *d["shape"][1:]), np.float32) for d in details]
    for i, image in enumerate(images):
        interpreter.set_tensor(detail["index"], model_input(detail, image))
        interpreter.invoke()
        for k, d in enumerate(details):
            out[k][i] = Quantization.of(d).dequantize(interpreter.get_tensor(d["index"]))[0]
    return out
