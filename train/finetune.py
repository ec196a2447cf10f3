"""The trunk fine-tuned on the findings, quantization-aware, so that its int8 features carry them.

Why: ImageNet's features, even distilled for int8 (`train.distil`), read digital screening
mammograms at chance, and every head fitted on them stays there. With both sources (film MIAS and
digital screening) there are enough women to move the trunk itself. Two cores set the shape:
- The first blocks (conv1 .. `STEM_END`: edges and textures at strides 2 to 8) keep their
  int8-distilled weights (`train.distil`, learnt from pixels only, never labels). Their int8
  outputs are computed once per scan and scale and cached as uint8 codes (exact: they lie on the
  int8 grid of [0, 6]).
- The later blocks (stride 16, where a lesion-sized pattern is seen) are trained with their
  weights and activations on the int8 grid (straight-through rounding, `train.distil.blocks`), so
  the features the board computes in int8 are the features that were trained.
- The training heads are linear on the cell features: a lesion logit per cell and a malignancy
  logit per cell. An image's logit pools its cells over the breast by log-mean-exp (a soft
  maximum: one lesion is enough, a tissue-wide shift is not), the scales averaged.

Losses, per training scan: the lesion cells of MIAS circles (1 inside, 0 in the rest of the
breast, and 0 in every cell of a normal breast of a source that draws circles); abnormal or not
(every scan: a MIAS finding, a cancer of the digital source); malignant or not (every scan: MIAS
severity M, a cancer); every scan weighs alike. On one probe fold (research/finetune/two_sources.md),
Adam at 5e-4 with the normal digital images' cells as negatives, or with each source weighted by
1/sqrt(its scans), or with both, read both sources worse than these settings (the learning rate
was not probed apart).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train import distil, trunk

STEM_END = "conv_pw_5"
"""The last convolution of the frozen stem; the blocks after it are fine-tuned."""
EPOCHS = 5
LEARNING_RATE = 3e-4  # Adam's, for the trunk's blocks, decayed along a cosine (5e-4 lost skill on a probe fold)
HEAD_LEARNING_RATE = 3e-3  # for the linear training heads, which start from zero
BATCH = 16
CELL_WEIGHT = 0.5  # of the lesion-cell loss beside the two image losses
LESION_CELL_WEIGHT = 10.0  # a lesion cell against a background one: lesions are a few cells of a breast
CODE_STEP = 6.0 / 255
"""The int8 grid of a ReLU6 output: code k stands for k x CODE_STEP."""


@dataclass(frozen=True)
class Targets:
    """What each scan teaches (in the dataset's order)."""

    cells: np.ndarray  # (n, g, g) lesion target on the finest grid: 1, 0, or < 0 (not used)
    abnormal: np.ndarray  # (n,)
    malignant: np.ndarray  # (n,)
    weight: np.ndarray  # (n,) of the image losses


@dataclass(frozen=True)
class Finetuned:
    """The trunk's weights (stem and fine-tuned blocks, `train.distil.Tuned`) and its linear training heads."""

    tuned: distil.Tuned
    lesion_w: np.ndarray  # (C,) lesion logit of a cell
    lesion_b: float
    malignant_w: np.ndarray  # (C,) malignancy logit of a cell
    malignant_b: float


def breast_masks(images: np.ndarray, factors: tuple[int, ...]) -> list[np.ndarray]:
    """(n, g, g) float 1/0 per scale: the cells of the prepared `images` that are mostly breast
    (`train.reader.breast_cells`) on each scale's grid, the image average-pooled f x f."""
    from train.reader import breast_cells, scale_images

    size = images.shape[1]
    return [breast_cells(scale_images(images, f), size // f // 16).astype(np.float32) for f in factors]


def targets(data) -> Targets:
    """The training targets of a `train.data.Dataset` (MIAS circles, labels of both sources)."""
    from train.data import heatmap_target

    grid = data.size // 16
    located = {r.source for r, circles in zip(data.records, data.circles) if circles}
    cells = np.full((len(data.records), grid, grid), -1.0, np.float32)
    for i, record in enumerate(data.records):
        if not record.abnormal and record.source in located:
            cells[i] = 0.0
        elif data.circles[i] and not record.lesions_without_location:
            cells[i] = heatmap_target(data.circles[i], data.size, grid, False)
    return Targets(cells, data.abnormal, data.malignant, np.ones(len(data.records), np.float32))


def stem_codes(images: np.ndarray, base: distil.Tuned, cache: Path | None = None) -> np.ndarray:
    """uint8 codes (n, s/8, s/8, c) of the stem's int8 output on prepared grey levels (n, s, s), cached."""
    path = None
    if cache is not None:
        h = hashlib.sha256(np.ascontiguousarray(images).tobytes())
        h.update(trunk.tuned_digest(base).encode())
        h.update(STEM_END.encode())
        h.update(Path(distil.__file__).read_bytes())
        path = Path(cache) / f"stem-{images.shape[1]}-{len(images)}-{h.hexdigest()[:20]}.npy"
        if path.is_file():
            return np.load(path)
    import tensorflow as tf

    stem, _ = _split(distil.folded(images.shape[1], base))
    run = tf.function(lambda x: distil._forward(stem, x, True), reduce_retracing=True)
    out = np.concatenate([np.rint(run(tf.constant(images[s:s + BATCH, :, :, None], tf.float32)).numpy() / CODE_STEP)
                          .astype(np.uint8) for s in range(0, len(images), BATCH)])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


def _split(convs: list) -> tuple[list, list]:
    k = [c.name for c in convs].index(STEM_END) + 1
    return convs[:k], convs[k:]


def _pool(logits, mask):
    """log-mean-exp of cell logits (n, g, g) over the breast cells `mask`."""
    import tensorflow as tf

    inside = tf.reduce_logsumexp(logits + tf.math.log(mask + 1e-9), axis=(1, 2))
    return inside - tf.math.log(tf.reduce_sum(mask, axis=(1, 2)) + 1e-6)


def finetune(codes: list[np.ndarray], masks: list[np.ndarray], target: Targets, index: np.ndarray,
             base: distil.Tuned, epochs: int = EPOCHS, seed: int = 0, progress=None) -> Finetuned:
    """Fine-tune the blocks after the stem on the scans `index`, from the stem codes at each scale
    (`codes[k]`, finest first) and their breast cells (`masks[k]`)."""
    import keras
    import tensorflow as tf

    tf.random.set_seed(seed)
    size = codes[0].shape[1] * 8
    _, tail = _split(distil.folded(size, base))
    channels = int(tail[-1].kernel.shape[-1])
    heads_w = tf.Variable(tf.zeros((channels, 2)))
    heads_b = tf.Variable(tf.constant([-3.0, -3.0]))
    image_b = tf.Variable(tf.zeros((2,)))
    trunk_vars = [v for conv in tail for v in (conv.kernel, conv.bias)]
    head_vars = [heads_w, heads_b, image_b]
    steps = max(1, epochs * (len(index) // BATCH))
    trunk_opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps))
    head_opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(HEAD_LEARNING_RATE, steps))

    @tf.function(reduce_retracing=True)
    def step(scale_codes, scale_masks, cells, abnormal, malignant, weight):
        with tf.GradientTape() as tape:
            image = tf.zeros((2, tf.shape(abnormal)[0]))
            for k, (c, m) in enumerate(zip(scale_codes, scale_masks)):
                logits = tf.einsum("nhwc,co->nhwo", distil.blocks(tail, tf.cast(c, tf.float32) * CODE_STEP, True), heads_w) + heads_b
                image += tf.stack([_pool(logits[..., j], m) for j in range(2)]) / len(scale_codes)
                if k == 0:
                    valid = tf.cast(cells >= 0, tf.float32) * m
                    cell_weight = valid * (1 + (LESION_CELL_WEIGHT - 1) * tf.cast(cells > 0.5, tf.float32))
                    cell_loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(tf.maximum(cells, 0.0), logits[..., 0])
                                              * cell_weight) / (tf.reduce_sum(cell_weight) + 1.0)
            image += image_b[:, None]
            bce = tf.nn.sigmoid_cross_entropy_with_logits
            loss = (tf.reduce_sum((bce(abnormal, image[0]) + bce(malignant, image[1])) * weight) / tf.reduce_sum(weight)
                    + CELL_WEIGHT * cell_loss)
        grads = tape.gradient(loss, trunk_vars + head_vars)
        trunk_opt.apply_gradients(zip(grads[:len(trunk_vars)], trunk_vars))
        head_opt.apply_gradients(zip(grads[len(trunk_vars):], head_vars))
        return loss

    rng = np.random.default_rng(seed)
    for _ in progress(range(epochs), desc="fine-tune") if progress else range(epochs):
        order = rng.permutation(index)
        for start in range(0, len(order) - BATCH + 1, BATCH):
            rows = np.sort(order[start:start + BATCH])
            flip = rng.random() < 0.5  # upside down: a breast's top and bottom are alike; the chest wall stays left
            batch = [a[rows][:, ::-1] if flip else a[rows] for a in (*codes, *masks, target.cells)]
            step(batch[:len(codes)], batch[len(codes):-1], batch[-1],
                 target.abnormal[rows], target.malignant[rows], target.weight[rows])
    tuned = dict(base)
    tuned.update({conv.name: (distil.on_int8_grid(conv.kernel.numpy(), conv.depthwise), conv.bias.numpy()) for conv in tail})
    w, b = heads_w.numpy().astype(np.float64), heads_b.numpy().astype(np.float64)
    return Finetuned(tuned, w[:, 0], float(b[0]), w[:, 1], float(b[1]))


def features(codes: np.ndarray, tuned: distil.Tuned) -> np.ndarray:
    """(n, g, g, C) int8-grid cell features of the fine-tuned blocks on stem codes of one scale: what
    the int8 network computes, with the converter's rounding of the blocks simulated."""
    import tensorflow as tf

    _, tail = _split(distil.folded(codes.shape[1] * 8, tuned))
    run = tf.function(lambda c: distil.blocks(tail, tf.cast(c, tf.float32) * CODE_STEP, True), reduce_retracing=True)
    return np.concatenate([run(tf.constant(codes[s:s + 64])).numpy() for s in range(0, len(codes), 64)])
