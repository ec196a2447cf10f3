"""The not-a-mammogram gate's image network (edge/scan/gate.tflite), built once by scripts/gate_corpus.py.

The gate's pixel features (edge.scan.plausibility.FEATURES) describe a breast's shape and
texture; a picture of a kind the corpus never had can still match them. An ImageNet network's
pooled features describe what a picture shows, so a logistic regression on them (fitted by
scripts/gate_corpus.py, kept in edge/scan/gate.json) refuses much of what the trees let through.
ImageNet MobileNet v1 (alpha 0.25, the trunk's weights) at NETWORK_SIDE pixels, the grey input
read as the trunk reads it; the features are averages of three depths' activations and the
maxima of the last, in one int8 output (the board reads them dequantized, and the regression is
fitted on exactly those). About 0.3 MB and a few ms a scan.
"""

from __future__ import annotations

import numpy as np

TAPS = ("conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu")


def keras_model():
    """The float network: (1, NETWORK_SIDE, NETWORK_SIDE, 1) grey levels in, (1, 704) features out."""
    import keras
    from keras import layers

    from edge.scan.plausibility import NETWORK_SIDE
    from train import trunk

    inputs, base = trunk.imagenet(NETWORK_SIDE, 1, "picture")
    taps = [base.get_layer(name).output for name in TAPS]
    pooled = [layers.GlobalAveragePooling2D()(t) for t in taps] + [layers.GlobalMaxPooling2D()(taps[-1])]
    return keras.Model(inputs, layers.Concatenate(name="features")(pooled))


def tflite(pictures: np.ndarray) -> bytes:
    """The int8 network (uint8 input), calibrated on `pictures` (N, NETWORK_SIDE, NETWORK_SIDE) uint8."""
    from train.quantizer import quantize, representative_images

    return quantize(keras_model(), representative_images(pictures), "int8")
