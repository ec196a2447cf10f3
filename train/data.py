"""Training data: every scan prepared once by the device's own `prepare`, with its lesion circles.

Each scan goes through `edge.preprocess.prepare` exactly once and is kept as a uint8 array, so
the network sees what the Pi will show it (no train/serve skew). Lesion circles are carried to
the model-input grid with the scan's `Geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge import LABELS
from edge.preprocess import Geometry, prepare
from train.scan_record import ScanRecord

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

    records: list[ScanRecord]
    images: np.ndarray  # (n, size, size) uint8, the output of `prepare`
    geometries: list[Geometry]
    circles: list[tuple[Circle, ...]]

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def class_index(self) -> np.ndarray:
        """Index of each scan's label in edge.LABELS; -1 for a finding of unknown kind."""
        return np.array([LABELS.index(r.label) if r.label in LABELS else -1 for r in self.records])

    @property
    def women(self) -> np.ndarray:
        """Each scan's woman, told apart across sources (the unit a health worker decides on)."""
        return np.array([r.woman + "@" + r.source for r in self.records])

    @property
    def abnormal(self) -> np.ndarray:
        return np.array([r.abnormal for r in self.records], dtype=np.float32)

    @property
    def malignant(self) -> np.ndarray:
        return np.array([r.malignant for r in self.records], dtype=np.float32)


def prepare_record(record: ScanRecord, size: int) -> tuple[np.ndarray, Geometry, tuple[Circle, ...]]:
    """One scan through the device's `prepare`, with its lesion circles carried to the input grid."""
    prepared = prepare(record.pixels(), size=size)
    geometry = prepared.geometry
    circles = tuple(
        Circle(*geometry.to_input(lesion.row, lesion.col), geometry.length_to_input(lesion.radius))
        for lesion in record.lesions
    )
    return prepared.image, geometry, circles


def load_dataset(records: list[ScanRecord], size: int, progress=None) -> Dataset:
    """Prepare every scan once (the device's `prepare`) and put its circles on the input grid."""
    images, geometries, circles = [], [], []
    for record in progress(records) if progress else records:
        image, geometry, scan_circles = prepare_record(record, size)
        images.append(image)
        geometries.append(geometry)
        circles.append(scan_circles)
    return Dataset(list(records), np.stack(images), geometries, circles)


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
