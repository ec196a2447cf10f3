"""On-device mammogram triage: decode a scan, prepare it, run the quantized model, explain the answer.

Needs only numpy, pillow and a TFLite runtime; never imports TensorFlow, `train` or `convert`.
"""

from edge.errors import EdgeError

LABELS = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")
"""The seven MIAS classes, in the order of the model's class output."""

CLASS_NAMES = {
    "CALC": "calcification",
    "CIRC": "well-defined/circumscribed mass",
    "SPIC": "spiculated mass",
    "MISC": "ill-defined mass",
    "ARCH": "architectural distortion",
    "ASYM": "asymmetry",
    "NORM": "normal",
}

__all__ = ["EdgeError", "LABELS", "CLASS_NAMES"]
