"""The one preparation of a scan for the model, used by training and by the device alike.

Training imports `prepare` from here, so a scan on the Pi goes through exactly the steps its
training scans went through (no train/serve skew). numpy + pillow only, and most of the work
is done by Pillow in C on a 1/8-scale copy, because this runs once per scan on a Pi.

Steps, and why:
1. Grey levels to 8 bits by the scan's own range: 8-bit PGM, 12-bit-in-16 and 16-bit scanners
   all arrive at the same scale. A scan of inverted polarity (white background, dark breast:
   a MONOCHROME1 image exported without flipping, about 1 in 7 of the digital source) is
   turned into its negative here, before anything else reads it (`inverted_polarity`).
2. Breast mask on a coarse copy: Otsu threshold, then only the connected region around the
   densest blob is kept. Film labels, markers and tape are separate bright islands; they carry
   no diagnosis but would give a small model something easy and wrong to learn.
3. Orientation: the mirror image is taken when the breast's centre of mass lies in the right
   half, so every breast has its chest wall on the left (left and right MIAS breasts face
   opposite ways; a small data set cannot afford to learn both).
4. Crop to a square around the breast, anchored at the chest wall: the breast fills the input
   instead of black film, which doubles the pixels a lesion gets at a given input size.
5. The other bright islands (slightly grown) are set to black, removing labels; the breast's
   own edge is left as the film shows it.
6. Contrast: the breast's 1st..99.5th grey-level percentiles are stretched to 0..255, evening
   out film exposure and scanner differences.
The `Geometry` returned with the image maps points between scan and model input, so lesion
circles can be drawn on inputs for training and heat-maps put back on scans on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

DEFAULT_SIZE = 512
COARSE_FACTOR = 8
"""The mask is found on a 1/8-scale copy: 128x128 for a 1024x1024 MIAS scan."""
MASK_GROW = 1
"""Coarse pixels added around a label island so its halo goes too."""
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.5


@dataclass(frozen=True)
class Geometry:
    """Where the model input lies in the scan: an optional mirror, then a square crop, then a resize."""

    scan_shape: tuple[int, int]
    flipped: bool
    top: int
    left: int
    side: int
    size: int

    def to_input(self, row: float, col: float) -> tuple[float, float]:
        """Scan (row, col) -> model-input (row, col)."""
        if self.flipped:
            col = self.scan_shape[1] - 1 - col
        scale = self.size / self.side
        return (row - self.top + 0.5) * scale - 0.5, (col - self.left + 0.5) * scale - 0.5

    def to_scan(self, row: float, col: float) -> tuple[float, float]:
        """Model-input (row, col) -> scan (row, col)."""
        scale = self.side / self.size
        row, col = (row + 0.5) * scale - 0.5 + self.top, (col + 0.5) * scale - 0.5 + self.left
        if self.flipped:
            col = self.scan_shape[1] - 1 - col
        return row, col

    def cell_centre_to_scan(self, i: int, j: int, grid: tuple[int, int]) -> tuple[float, float]:
        """Scan (row, col) of the centre of heat-map cell (i, j) on a `grid` of (rows, cols) cells
        covering the model input: where a heat-map peak lies on the scan."""
        rows, cols = grid
        return self.to_scan((i + 0.5) * self.size / rows - 0.5, (j + 0.5) * self.size / cols - 0.5)

    def length_to_input(self, length: float) -> float:
        """A distance in scan pixels (a lesion radius) in model-input pixels."""
        return length * self.size / self.side


@dataclass(frozen=True)
class Prepared:
    """A scan ready for the model: `image` is uint8 (size, size); `quality` names a problem or is None."""

    image: np.ndarray
    geometry: Geometry
    quality: str | None = None
    inverted: bool = False  # the scan was of inverted polarity and was read as its negative


def prepare(scan: np.ndarray, size: int = DEFAULT_SIZE) -> Prepared:
    """Turn a decoded greyscale scan (2-D, any size and bit depth) into the model's input."""
    if scan.ndim != 2 or min(scan.shape) < 2:
        raise ValueError(f"expected a 2-D greyscale scan, got shape {scan.shape}")
    grey = Image.fromarray(_to_uint8(scan), mode="L")
    coarse = _coarse(grey)
    inverted = inverted_polarity(coarse)
    if inverted:  # from here on the scan is its negative: a negative's negative is the scan, exactly
        grey = ImageOps.invert(grey)
        coarse = _coarse(grey)
    factor = scan.shape[0] / coarse.shape[0], scan.shape[1] / coarse.shape[1]

    mask, islands, quality = _breast_mask(coarse)
    rows, cols = np.nonzero(mask)
    flipped = bool(cols.mean() > (coarse.shape[1] - 1) / 2)
    if flipped:
        cols = coarse.shape[1] - 1 - cols
    top, bottom = rows.min() * factor[0], (rows.max() + 1) * factor[0]
    left, right = cols.min() * factor[1], (cols.max() + 1) * factor[1]
    side = int(round(max(bottom - top, right - left)))
    top, left = int(round((top + bottom - side) / 2)), int(round(left))
    geometry = Geometry(scan.shape, flipped, top, left, side, size)

    # Crop and shrink first, mirror the small result: the same picture, a fraction of the work.
    # The box may reach past the scan: crop pads with black.
    width = scan.shape[1]
    box = (width - left - side, top, width - left, top + side) if flipped else (left, top, left + side, top + side)
    small = grey.crop(box).resize((size, size), Image.Resampling.BOX)
    if flipped:
        small = small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = np.asarray(small, dtype=np.float32)
    if islands.any():
        image[_on_input_grid(islands, geometry, factor)] = 0.0
    low, high = _stretch_limits(coarse, mask)
    image = np.clip((image - low) * (255.0 / max(high - low, 1.0)), 0, 255)
    return Prepared(np.rint(image).astype(np.uint8), geometry, quality, inverted)


def _coarse(grey: Image.Image) -> np.ndarray:
    return np.asarray(grey.reduce(COARSE_FACTOR) if min(grey.size) >= 4 * COARSE_FACTOR else grey)


POLARITY_FRAME = 2
"""Coarse pixels of the image's outer frame that the polarity check reads."""


def inverted_polarity(coarse: np.ndarray) -> bool:
    """Is this 8-bit coarse copy a negative: a bright frame around a darker inside?

    A mammogram's frame is mostly background (the breast touches one side only), dark and flat;
    an inverted one's is bright and flat. Both votes must agree: the frame's median lies in the
    upper half of the image's 1st..99th percentile range, and more of the frame lies within a
    tenth of that range of the top than of the bottom. On the development data the two split
    cleanly (MIAS: the median at most 0.45 of the range, 0 of 258 inverted; the digital source:
    338 of 2,222 inverted, each above 0.80, the others at most 0.29).
    """
    low, high = np.percentile(coarse, (1, 99))
    span = max(float(high - low), 1.0)
    k = POLARITY_FRAME
    frame = np.concatenate([coarse[:k].ravel(), coarse[-k:].ravel(), coarse[k:-k, :k].ravel(), coarse[k:-k, -k:].ravel()])
    bright, dark = np.mean(frame >= high - 0.1 * span), np.mean(frame <= low + 0.1 * span)
    return bool(np.median(frame) > low + 0.5 * span and bright > dark)


def _on_input_grid(coarse_mask: np.ndarray, geometry: Geometry, factor: tuple[float, float]) -> np.ndarray:
    """A coarse (unmirrored) scan mask sampled at the model input's pixel centres; outside the scan is False."""
    centres = geometry.top + (np.arange(geometry.size) + 0.5) * (geometry.side / geometry.size)
    row_index = np.floor(centres / factor[0]).astype(np.int64)
    col_pos = geometry.left + (np.arange(geometry.size) + 0.5) * (geometry.side / geometry.size)
    if geometry.flipped:
        col_pos = geometry.scan_shape[1] - col_pos
    col_index = np.floor(col_pos / factor[1]).astype(np.int64)
    rows_ok = (row_index >= 0) & (row_index < coarse_mask.shape[0])
    cols_ok = (col_index >= 0) & (col_index < coarse_mask.shape[1])
    picked = coarse_mask[np.clip(row_index, 0, coarse_mask.shape[0] - 1)][:, np.clip(col_index, 0, coarse_mask.shape[1] - 1)]
    return picked & rows_ok[:, None] & cols_ok[None, :]


def _to_uint8(scan: np.ndarray) -> np.ndarray:
    """8-bit scans pass as they are; other depths are scaled by their own range.

    Integer scans go through a look-up table (one byte per pixel of extra memory, which matters
    for a 30-megapixel 16-bit scan on a 1 GB board); other types are scaled in float32 with
    the offset folded into the scale, so even a range near the float limit cannot overflow.
    """
    if scan.dtype == np.uint8:
        return np.ascontiguousarray(scan)
    if scan.dtype.kind in "ui" and scan.dtype.itemsize <= 2:
        low, high = int(scan.min()), int(scan.max())
        levels = np.arange(np.iinfo(scan.dtype).min, np.iinfo(scan.dtype).max + 1, dtype=np.float64)
        table = np.clip(np.rint((levels - low) * (255.0 / max(high - low, 1))), 0, 255).astype(np.uint8)
        if scan.dtype.kind == "i":  # flipping the sign bit maps min..max onto 0..2^n-1, in order
            unsigned = np.dtype(f"u{scan.dtype.itemsize}")
            return table[scan.view(unsigned) ^ unsigned.type(np.iinfo(scan.dtype).min & np.iinfo(unsigned).max)]
        return table[scan]
    values = np.asarray(scan, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, np.float32(0.0))
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / max(high - low, 1e-30)
    scaled = values * np.float32(scale) - np.float32(low * scale)
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def _breast_mask(coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The breast (bright region around the densest blob), the other bright islands (labels,
    markers) grown by a margin, and a note when the scan looks wrong."""
    everything, nothing = np.ones(coarse.shape, bool), np.zeros(coarse.shape, bool)
    low, high = int(coarse.min()), int(coarse.max())
    if high - low < 16:
        return everything, nothing, "blank or nearly uniform image"
    foreground = coarse > _otsu_threshold(coarse)
    region = _largest_region(foreground)
    quality = None
    share = region.mean()
    if share < 0.02:
        quality = "no breast found (bright region under 2% of the image)"
    elif share > 0.97:
        quality = "image is bright almost everywhere (overexposed or not a mammogram)"
    if not region.any():
        return everything, nothing, quality
    islands = foreground & ~region
    for _ in range(MASK_GROW):
        islands = _dilate(islands) & ~region
    return region, islands, quality


def _largest_region(foreground: np.ndarray, tries: int = 4) -> np.ndarray:
    """The largest of the connected regions grown from the densest spots of the foreground.

    Densest-first finds the breast in one try on most scans; the other tries catch a scan
    whose unexposed film border is a wide bright band.
    """
    best = np.zeros_like(foreground)
    left = foreground.copy()
    density = _box_sum(foreground, 7)
    for _ in range(tries):
        if left.sum() <= best.sum():
            break
        seed = np.zeros_like(left)
        seed[np.unravel_index(np.argmax(np.where(left, density, -1)), left.shape)] = True
        region = _reconstruct(seed, left)
        if region.sum() > best.sum():
            best = region
        left &= ~region
    return best


def _otsu_threshold(values: np.ndarray) -> int:
    histogram = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(histogram)
    mass = np.cumsum(histogram * np.arange(256))
    total_weight, total_mass = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass * total_weight - weight * total_mass) ** 2 / (weight * (total_weight - weight))
    return int(np.nanargmax(between[:-1]))


def _box_sum(mask: np.ndarray, radius: int) -> np.ndarray:
    """Number of True pixels in the (2r+1)^2 box around each pixel (integral image)."""
    padded = np.pad(mask.astype(np.int32), radius + 1)
    integral = padded.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    return (integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k])[
        : mask.shape[0], : mask.shape[1]
    ]


def _dilate(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def _reconstruct(seed: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The connected part of `allowed` that touches `seed` (4-connectivity).

    Grows along whole row runs, then whole column runs, until nothing changes: a handful of
    vectorised passes instead of one pass per pixel of distance.
    """
    region = seed & allowed
    while True:
        grown = _fill_runs(_fill_runs(region, allowed).T, allowed.T).T
        if (grown == region).all():
            return region
        region = grown


def _fill_runs(region: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Every horizontal run of `allowed` pixels that contains a `region` pixel."""
    starts = allowed & ~np.pad(allowed, ((0, 0), (1, 0)))[:, :-1]
    run_ids = np.cumsum(starts.ravel()).reshape(allowed.shape) * allowed
    touched = np.zeros(run_ids.max() + 1, bool)
    touched[run_ids[region]] = True
    touched[0] = False
    return touched[run_ids]


def _stretch_limits(coarse: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    inside = coarse[mask]
    low, high = np.percentile(inside, (LOW_PERCENTILE, HIGH_PERCENTILE))
    return float(low), float(high)
