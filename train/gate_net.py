"""The not-a-mammogram gate's image network (edge/scan/gate.tflite), built once by scripts/gate_corpus.py.

The gate's pixel features (edge.scan.plausibility.FEATURES) describe a breast's shape and
texture; a picture of a kind the corpus never had can still match them. An ImageNet network's
pooled features describe what a picture shows, so a logistic regression on them (fitted by
scripts/gate_corpus.py, kept in edge/scan/gate.json) refuses much of what the trees let through.
ImageNet MobileNet v1 (alpha 0.25, the trunk's weights) at NETWORK_SIDE pixels, the grey input
read as the trunk reads it; the features are averages of three depths' activations and the
maxima of the last two. Float, with float16 weights (about 0.5 MB, a few ms a scan): an int8
copy read the corpora's pictures less well (held out, research/gate/network.md), and the gate
runs once a scan, on the CPU, so int8 buys it nothing. The board reads the features as they
come, and the regression is fitted on exactly those.
"""

from __future__ import annotations

TAPS = ("conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu")


def keras_model():
    """The float network: (1, NETWORK_SIDE, NETWORK_SIDE, 1) grey levels in, (1, 832) features out."""
    import keras
    from keras import layers

    from edge.scan.plausibility import NETWORK_SIDE
    from train import trunk

    inputs, base = trunk.imagenet(NETWORK_SIDE, 1, "picture")
    taps = [base.get_layer(name).output for name in TAPS]
    pooled = [layers.GlobalAveragePooling2D()(t) for t in taps] + [layers.GlobalMaxPooling2D()(t) for t in taps[1:]]
    return keras.Model(inputs, layers.Concatenate(name="features")(pooled))


def tflite() -> bytes:
    """The network as TFLite: float32 in and out, float16 weights (builtin ops only)."""
    import contextlib
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints the traced signature
        return bytes(converter.convert())
