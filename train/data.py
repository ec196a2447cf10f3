"""Training data: every scan prepared once by the device's own `prepare`, then augmented in memory.

Each scan goes through `edge.preprocess.prepare` exactly once and is cached as a uint8 array, so
the network sees what the Pi will show it (no train/serve skew). Lesion circles are carried to
the model-input grid with the scan's `Geometry`; augmentation moves image and circles together.
Augmentation is only ever applied to training-fold images (the callers in `train.fit` decide).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge import LABELS
from edge.preprocess import Geometry, prepare
from train.mias import MiasRecord

IGNORE = -1.0
"""Heat-map target of an image whose lesion has no coordinates: the cell loss skips it."""


@dataclass(frozen=True)
class Circle:
    """A lesion circle on the model-input grid (row, col in input pixels; radius in input pixels)."""

    row: float
    col: float
    radius: float


@dataclass
class Dataset:
    """The prepared development images and their targets, in the records' order."""

    records: list[MiasRecord]
    images: np.ndarray  # (n, size, size) uint8, the output of `prepare`
    geometries: list[Geometry]
    circles: list[tuple[Circle, ...]]

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def class_index(self) -> np.ndarray:
        return np.array([LABELS.index(r.label) for r in self.records])

    @property
    def abnormal(self) -> np.ndarray:
        return np.array([r.abnormal for r in self.records], dtype=np.float32)

    @property
    def malignant(self) -> np.ndarray:
        return np.array([r.malignant for r in self.records], dtype=np.float32)

    @property
    def unlocated(self) -> np.ndarray:
        """Images with a lesion the truth table gives no coordinates for (heat-map target unknown)."""
        return np.array([r.lesions_without_location > 0 for r in self.records])

    def subset(self, index: np.ndarray) -> "Dataset":
        index = np.asarray(index)
        return Dataset(
            [self.records[i] for i in index],
            self.images[index],
            [self.geometries[i] for i in index],
            [self.circles[i] for i in index],
        )


def load_dataset(records: list[MiasRecord], size: int, progress=None) -> Dataset:
    """Prepare every scan once (the device's `prepare`) and put its circles on the input grid."""
    images, geometries, circles = [], [], []
    for record in progress(records) if progress else records:
        prepared = prepare(record.pixels(), size=size)
        geometry = prepared.geometry
        images.append(prepared.image)
        geometries.append(geometry)
        circles.append(
            tuple(
                Circle(*geometry.to_input(lesion.row, lesion.col), geometry.length_to_input(lesion.radius))
                for lesion in record.lesions
            )
        )
    return Dataset(list(records), np.stack(images), geometries, circles)


@dataclass(frozen=True)
class Augment:
    """Ranges of the random changes applied to a training image (and its circles)."""

    rotate_degrees: float = 10.0
    scale: float = 0.10
    shift: float = 0.06  # fraction of the side
    brightness: float = 12.0  # grey levels
    contrast: float = 0.12
    gamma: float = 0.15


def augment(image: np.ndarray, circles: tuple[Circle, ...], rng: np.random.Generator, spec: Augment):
    """A randomly rotated, scaled, shifted and re-exposed copy of a prepared image, with its circles.

    No flips: `prepare` puts every chest wall on the left and every MIAS view is an MLO with the
    pectoral muscle at the top, so a flipped breast is a picture the device never sees.
    """
    size = image.shape[0]
    angle = np.deg2rad(rng.uniform(-spec.rotate_degrees, spec.rotate_degrees))
    scale = float(np.exp(rng.uniform(np.log(1 - spec.scale), np.log(1 + spec.scale))))
    shift = rng.uniform(-spec.shift, spec.shift, 2) * size
    centre = np.array([size / 2, size / 2])
    cos, sin = np.cos(angle), np.sin(angle)
    forward = scale * np.array([[cos, -sin], [sin, cos]])  # acts on (x=col, y=row), continuous coords
    inverse = np.linalg.inv(forward)
    # PIL wants output -> input: p_in = inverse @ (p_out - centre - shift) + centre
    offset = centre - inverse @ (centre + shift)
    data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    moved = Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=0
    )
    values = np.asarray(moved, dtype=np.float32) / 255.0
    values = values ** float(np.exp(rng.uniform(-spec.gamma, spec.gamma)))
    values = (values - 0.5) * (1 + rng.uniform(-spec.contrast, spec.contrast)) + 0.5
    values = values * 255.0 + rng.uniform(-spec.brightness, spec.brightness)
    out = np.clip(np.rint(values), 0, 255).astype(np.uint8)

    new_circles = []
    for circle in circles:
        point = np.array([circle.col + 0.5, circle.row + 0.5])
        col, row = forward @ (point - centre) + centre + shift - 0.5
        new_circles.append(Circle(float(row), float(col), circle.radius * scale))
    return out, tuple(new_circles)


def heatmap_target(circles: tuple[Circle, ...], size: int, grid: int, unlocated: bool) -> np.ndarray:
    """Per-cell target on the (grid, grid) heat-map: 1 inside a lesion circle, 0 elsewhere.

    A circle smaller than a cell still marks the cell holding its centre. An image with a lesion
    that has no coordinates is ignored entirely (all cells `IGNORE`): its lesion could be anywhere.
    """
    if unlocated:
        return np.full((grid, grid), IGNORE, np.float32)
    stride = size / grid
    centres = (np.arange(grid) + 0.5) * stride - 0.5
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    target = np.zeros((grid, grid), np.float32)
    for circle in circles:
        reach = max(circle.radius, 0.75 * stride)
        target[(rows - circle.row) ** 2 + (cols - circle.col) ** 2 <= reach**2] = 1.0
    return target


def sampling_weights(class_index: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Probability of drawing each image: proportional to 1 / count(its class) ** power.

    With power 0.5 the batches hold classes in proportion to the square root of their counts;
    the loss weights (`class_loss_weights`) make up the rest of the way to balanced classes.
    """
    counts = np.bincount(class_index, minlength=len(LABELS)).astype(np.float64)
    weights = 1.0 / np.maximum(counts[class_index], 1) ** power
    return weights / weights.sum()


def class_loss_weights(class_index: np.ndarray, sampling_power: float = 0.5) -> np.ndarray:
    """Weight of each class in the 7-class loss, completing `sampling_weights` to balanced classes.

    Sampling draws class c in proportion to count_c ** (1 - power); weighting it by
    count_c ** -(1 - power) makes every class count equally. Scaled to average 1 over the draws.
    """
    counts = np.bincount(class_index, minlength=len(LABELS)).astype(np.float64)
    drawn = counts ** (1 - sampling_power)
    weights = np.where(counts > 0, 1.0 / np.maximum(drawn, 1e-12), 0.0)
    return (weights * drawn.sum() / (weights * drawn).sum()).astype(np.float32)


def patches(data: Dataset, rng: np.random.Generator, count: int, side: int, spec: Augment) -> Dataset:
    """Lesion and background patches cut from (augmented) images of `data`, as a small `Dataset`.

    Half the patches are centred near a lesion (they keep that image's record: class, severity,
    circles, moved into patch coordinates); half lie inside the breast of a normal image (NORM,
    no circle). Only the images passed in are used: the caller gives training-fold images only.
    """
    located = [i for i, c in enumerate(data.circles) if c and data.records[i].abnormal]
    normal = [i for i, r in enumerate(data.records) if not r.abnormal]
    images = np.zeros((count, side, side), np.uint8)
    records, circles_out = [], []
    size, half = data.size, side // 2
    for k in range(count):
        lesion = bool(located) and (k % 2 == 0 or not normal)
        i = int(rng.choice(located if lesion else normal))
        image, circles = augment(data.images[i], data.circles[i], rng, spec)
        if lesion:
            circle = circles[rng.integers(len(circles))]
            jitter = rng.uniform(-0.5, 0.5, 2) * min(circle.radius, half)
            row, col = circle.row + jitter[0], circle.col + jitter[1]
        else:
            inside = np.argwhere(image > 20)  # anywhere in the breast, edges and pectoral muscle too
            row, col = inside[rng.integers(len(inside))] if len(inside) else (size / 2, size / 2)
        top = int(np.clip(round(row) - half, 0, size - side))
        left = int(np.clip(round(col) - half, 0, size - side))
        images[k] = image[top : top + side, left : left + side]
        records.append(data.records[i])
        circles_out.append(tuple(Circle(c.row - top, c.col - left, c.radius) for c in circles))
    return Dataset(records, images, [data.geometries[0]] * count, circles_out)
