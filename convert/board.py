"""Both sides of the fidelity gate seen through the board's own code, `edge.inference.classifier.Classifier`.

The gate decides whether a model ships, so it must judge what a board will print: the int8
model runs in the board's `Classifier` (`Classifier.from_bytes`: input table, dequantization,
output positions from the manifest, `postprocess`), and the float Keras model's outputs go
through that same `postprocess`. Whatever `postprocess` makes of the outputs (coherent probabilities, clipping,
the triage) reaches both sides of the comparison without a change here.
"""

from __future__ import annotations

import copy
from typing import Any

from edge.inference.classifier import Classifier, Quantization, Result
from edge.errors import EdgeError
from edge.preprocess import Prepared


def float_result(classifier: Classifier, model: Any, prepared: Prepared) -> Result:
    """The float Keras model's answer for `prepared`, made by the board's `postprocess`.

    The Keras outputs are real values already, so they go through a copy of `classifier` whose
    outputs are marked unquantized (scale 0: `Quantization.dequantize` passes them as they are)."""
    from convert.quantize import run_keras

    if not hasattr(classifier, "_output_quant"):  # a loud failure, not a silently wrong gate
        raise EdgeError("edge.inference.classifier.Classifier no longer has _output_quant: update convert.board.float_result")
    real = copy.copy(classifier)
    real._output_quant = (Quantization(0.0, 0),) * len(classifier._output_quant)
    return real.postprocess(tuple(run_keras(model, prepared.image)), prepared)


def int8_result(classifier: Classifier, prepared: Prepared) -> Result:
    """The int8 model's answer for `prepared`, exactly as `Classifier.classify` makes it."""
    return classifier.postprocess(classifier.run(prepared.image), prepared)
