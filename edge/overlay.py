"""The heat-map picture: the scan, the model's heat-map put back where it lies, the answer written on top.

The heat-map covers the model-input square, which is the crop box (left, top, side) of the
scan after an optional left-right mirror (`edge.preprocess.Geometry`). It is resized to the
box, placed in a canvas the size of the (mirrored) scan, mirrored back, and blended in colour
over a downsized copy of the scan: no matplotlib, only numpy and Pillow. Heat values are
shown as they are (0..1), not stretched, so a scan the model finds unremarkable stays grey.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge import CLASS_NAMES
from edge.fileio import atomic_write_bytes

MAX_SIDE = 1024
OPACITY = 0.6
"""Colour share at heat 1.0; the scan still shows through the hottest spot."""
RAMP = np.array(  # heat 0 -> 1: dark blue, cyan, green, yellow, red (a jet-like ramp)
    [[0, 0, 128], [0, 160, 255], [0, 200, 0], [255, 230, 0], [255, 0, 0]], dtype=np.float32
)
NOTICE = "research software - not a medical device"


def colour_ramp(heat: np.ndarray) -> np.ndarray:
    """Heat in 0..1 (any shape) -> RGB float32 (shape + (3,)) by linear steps through RAMP."""
    position = np.clip(heat, 0.0, 1.0) * (len(RAMP) - 1)
    low = np.minimum(position.astype(np.int32), len(RAMP) - 2)
    frac = (position - low)[..., None]
    return RAMP[low] * (1.0 - frac) + RAMP[low + 1] * frac


_PALETTE = np.rint(colour_ramp(np.arange(256) / 255.0)).astype(np.uint8).ravel().tolist()
"""The ramp as a 256-colour palette: heat levels 0..255 -> RGB, applied by Pillow in C."""


def heat_image(heatmap: np.ndarray, geometry, shape: tuple[int, int]) -> Image.Image:
    """The heat-map (h, w, values 0..1) on the model-input grid -> an 8-bit image of `shape`
    (rows, cols) covering the scan: resized onto the crop box, mirrored back, 0 outside the box."""
    scale_r, scale_c = shape[0] / geometry.scan_shape[0], shape[1] / geometry.scan_shape[1]
    width = max(1, int(round(geometry.side * scale_c)))
    height = max(1, int(round(geometry.side * scale_r)))
    levels = np.rint(np.clip(heatmap, 0.0, 1.0) * 255.0).astype(np.uint8)
    heat = Image.fromarray(levels, mode="L").resize((width, height), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    canvas.paste(heat, (int(round(geometry.left * scale_c)), int(round(geometry.top * scale_r))))
    return canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if geometry.flipped else canvas


def heat_on_scan(heatmap: np.ndarray, geometry, shape: tuple[int, int]) -> np.ndarray:
    """`heat_image` as float32 0..1."""
    return np.asarray(heat_image(heatmap, geometry, shape), dtype=np.float32) / 255.0


def render(scan: np.ndarray, result, max_side: int = MAX_SIDE) -> Image.Image:
    """An RGB picture: a text band with `result`'s answer above `scan` (at most `max_side` pixels a
    side) with the heat-map blended in and its peak circled. The band does not hide any of the scan.
    All pixel work is done by Pillow on 8-bit images: fast and small on a Pi."""
    grey = Image.fromarray(_to_uint8(scan), mode="L")
    factor = max(grey.size) / max_side
    if factor > 1:
        grey = grey.resize((max(1, round(grey.width / factor)), max(1, round(grey.height / factor))), Image.Resampling.BOX)
    heat = heat_image(result.heatmap, result.geometry, (grey.height, grey.width))
    colour = heat.copy()
    colour.putpalette(_PALETTE)  # an "L" image with a palette becomes a "P" image
    colour = colour.convert("RGB")
    alpha = heat.point([int(round(OPACITY * level)) for level in range(256)])
    scan_rgb = Image.composite(colour, grey.convert("RGB"), alpha)
    lines = _lines(result)
    size = max(10, min(24, max(scan_rgb.width, 400) // 45))
    pad = size // 2
    band = len(lines) * (size + pad // 2) + pad
    picture = Image.new("RGB", (scan_rgb.width, scan_rgb.height + band), (0, 0, 0))
    picture.paste(scan_rgb, (0, band))
    draw = ImageDraw.Draw(picture)
    font = _font(size)
    for i, line in enumerate(lines):
        draw.text((pad, pad // 2 + i * (size + pad // 2)), line, fill=(255, 255, 255), font=font)
    row, col, _ = result.heatmap_peak()
    r = band + (row + 0.5) * scan_rgb.height / result.geometry.scan_shape[0] - 0.5
    c = (col + 0.5) * scan_rgb.width / result.geometry.scan_shape[1] - 0.5
    radius = max(6, scan_rgb.width // 40)
    draw.ellipse((c - radius, r - radius, c + radius, r + radius), outline=(255, 255, 255), width=max(1, radius // 4))
    return picture


def write(path: str | Path, scan: np.ndarray, result, max_side: int = MAX_SIDE) -> Path:
    """Render and write the PNG atomically (a killed run leaves the old file or none, never half)."""
    buffer = io.BytesIO()
    render(scan, result, max_side).save(buffer, format="PNG", compress_level=1)  # speed over bytes
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _lines(result) -> list[str]:
    lines = [
        f"{result.label} {CLASS_NAMES.get(result.label, '')}",
        f"P(abnormal) {result.abnormal:.2f}  P(malignant) {result.malignant:.2f}  {result.triage.upper()}",
        NOTICE,
    ]
    if result.quality:
        lines.append(f"check the scan: {result.quality}")
    return lines


@functools.lru_cache(maxsize=4)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _to_uint8(scan: np.ndarray) -> np.ndarray:
    if scan.dtype == np.uint8:
        return np.ascontiguousarray(scan)
    values = np.nan_to_num(scan.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    return np.rint((values - low) * (255.0 / max(high - low, 1e-12))).astype(np.uint8)


def overlay_name(scan_path: str | Path, used: set[str]) -> str:
    """`mdb028.png` -> `mdb028.overlay.png`; a second scan with the same stem gets `mdb028-2.overlay.png`."""
    from edge.inputs import OVERLAY_SUFFIX

    stem = Path(scan_path).stem or "scan"
    name, n = f"{stem}{OVERLAY_SUFFIX}", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}{OVERLAY_SUFFIX}"
    used.add(name)
    return name
