"""The pretrained trunk: ImageNet MobileNet v1 (alpha 0.25), read as a grid of cell features.

Why this network: 258 scans are too few to learn image features from scratch (the small CNN
trained here reached an out-of-fold AUC of 0.60), and MobileNet v1 was designed for 8-bit
inference (ReLU6 everywhere, depthwise + pointwise convolutions, no squeeze-excite), so it
quantizes to int8 with little loss and compiles whole for the Edge TPU. Its weights ship in
`train/weights/` (Apache-2.0), so retraining works offline on a fresh clone.

The trunk is fully convolutional: built at the model's input size S, it reads the prepared
scan as an (S/16, S/16) grid of 128-channel cells (the output of block 11, stride 16). The
trunk is frozen: features of every prepared scan are computed once and cached on disk, keyed
by the prepared pixels themselves (so a change to `edge.preprocess` makes new features), this
file and the weights.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("weights") / "mobilenet_v1_0.25_224_imagenet.h5"
WEIGHTS_SHA256 = "dc1ff623e6cd99c3cc0dd2821ca0807ba013606af5a4e2afd4488fbf26a8b589"
ALPHA = 0.25
TAP = "conv_pw_11_relu"
STRIDE = 16
CHANNELS = 128


def build(size: int, batch_size: int | None = None, tuned=None):
    """(input, cell features) Keras tensors of the trunk at input (size, size, 1), ImageNet weights loaded
    (`tuned`: then `train.distil`'s weights in their place, each batch norm an identity plus its bias)."""
    if size % 32:
        raise ValueError(f"input size must be a multiple of 32, got {size}")
    inputs, base = imagenet(size, batch_size, "scan")
    for name, (kernel, bias) in (tuned or {}).items():
        bn = base.get_layer(name + "_bn")
        variance = bn.get_weights()[3]
        base.get_layer(name).set_weights([kernel])
        bn.set_weights([np.sqrt(variance + bn.epsilon), bias, np.zeros_like(variance), variance])
    return inputs, base.get_layer(TAP).output


def imagenet(size: int, batch_size: int | None, name: str):
    """(input, network): ImageNet MobileNet v1 (ALPHA, no top) reading one grey channel at (size, size, 1).

    The input holds grey levels 0..255; the model scales them to [-1, 1] itself (what MobileNet
    was trained on). The first convolution's RGB kernels are summed into one grey channel: a grey
    picture shown as RGB gives the same response.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    _check_weights()
    reference = keras.applications.MobileNet(alpha=ALPHA, weights=None, input_shape=(224, 224, 3))
    reference.load_weights(WEIGHTS)
    inputs = keras.Input(shape=(size, size, 1), batch_size=batch_size, name=name)
    scaled = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    base = keras.applications.MobileNet(alpha=ALPHA, weights=None, include_top=False, input_tensor=scaled)
    for layer in base.layers:
        if not layer.weights:
            continue
        weights = reference.get_layer(layer.name).get_weights()
        if layer.name == "conv1":
            weights = [weights[0].sum(axis=2, keepdims=True)]
        layer.set_weights(weights)
    return inputs, base


def _check_weights() -> None:
    if not WEIGHTS.is_file():
        raise FileNotFoundError(f"{WEIGHTS}: the ImageNet weights are missing (they ship with the repository)")
    digest = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ValueError(f"{WEIGHTS}: sha256 {digest[:12]}... is not the expected {WEIGHTS_SHA256[:12]}...")


def tuned_digest(tuned) -> str:
    """What features computed with `tuned` (distilled weights by layer) depend on; empty for the ImageNet weights."""
    if tuned is None:
        return ""
    h = hashlib.sha256()
    for name in sorted(tuned):
        for array in tuned[name]:
            h.update(name.encode())
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def cache_key(images: np.ndarray, tuned=None) -> str:
    """What the features depend on: the prepared pixels, this file and the weights (and `tuned`'s)."""
    digest = hashlib.sha256()
    digest.update(tuned_digest(tuned).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(WEIGHTS_SHA256.encode())
    return digest.hexdigest()[:20]


def features(images: np.ndarray, cache: Path | None = None, batch: int = 8, tuned=None) -> np.ndarray:
    """(n, S/16, S/16, 128) float32 cell features of images (n, S, S) of grey levels, cached in `cache`."""
    path = None
    if cache is not None:
        path = Path(cache) / f"trunk-{images.shape[1]}-{len(images)}-{cache_key(images, tuned)}.npy"
        if path.is_file():
            return np.load(path)
    import keras

    inputs, cells = build(images.shape[1], tuned=tuned)
    model = keras.Model(inputs, cells)
    out = model.predict(np.asarray(images, np.float32)[..., None], batch_size=batch, verbose=0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")  # two runs may fill one cache
        np.save(tmp, out.astype(np.float32))  # float32: the heads must see what the network computes
        os.replace(tmp, path)
    return out.astype(np.float32)


def quantized_features(images: np.ndarray, factors: tuple[int, ...], cache: Path | None = None, tuned=None,
                       activations: str = "int16") -> list[np.ndarray]:
    """The cell features a board computes: the trunk at every scale quantized (int8 weights,
    `activations` int16 or int8; calibrated as `edge-convert` calibrates, on these prepared images)
    and run by the TFLite interpreter.

    With int8 activations the frozen trunk's features differ from its float features by a good
    part of their spread (rounding errors add up over 11 depthwise blocks); with int16 ones, by a
    thousandth. Heads that are to run on a board are fitted on these (dequantized) either way."""
    key = f"{activations}-{'x'.join(map(str, factors))}-{images.shape[1]}-{len(images)}-{cache_key(images, tuned)}"
    paths = [Path(cache) / f"{key}-{f}.npy" for f in factors] if cache is not None else []
    if paths and all(p.is_file() for p in paths):
        return [np.load(p) for p in paths]
    import keras
    from keras import layers

    from train.quantizer import quantize, representative_images
    from edge.inference.classifier import Quantization, model_input
    from edge.runtime import make_interpreter

    size = images.shape[1]
    inputs = keras.Input(shape=(size, size, 1), batch_size=1, name="scan")
    outputs = []
    for f in factors:
        x = inputs if f == 1 else layers.AveragePooling2D(f, name=f"pool{f}")(inputs)
        scale_in, cells = build(size // f, batch_size=1, tuned=tuned)
        outputs.append(keras.Model(scale_in, cells, name=f"trunk{f}")(x))
    content = quantize(keras.Model(inputs, outputs), representative_images(images), activations)
    interpreter = make_interpreter(content, threads=2, kernels="builtin")
    detail = interpreter.get_input_details()[0]
    by_shape = {tuple(d["shape"][1:3]): d for d in interpreter.get_output_details()}
    wanted = [by_shape[(size // STRIDE // f, size // STRIDE // f)] for f in factors]
    out = [np.zeros((len(images), *d["shape"][1:]), np.float32) for d in wanted]
    for i, image in enumerate(images):
        interpreter.set_tensor(detail["index"], model_input(detail, image))
        interpreter.invoke()
        for k, d in enumerate(wanted):
            out[k][i] = Quantization.of(d).dequantize(interpreter.get_tensor(d["index"]))[0]
    for path, values in zip(paths, out):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, values)
        os.replace(tmp, path)
    return out
