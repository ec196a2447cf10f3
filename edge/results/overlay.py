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
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.fileio import atomic_write_bytes, new_file_mode
from edge.words import HEAT_LEGEND, handling, local_time, verdict

MAX_SIDE = 1024
OPACITY = 0.6
"""Colour share at heat 1.0; the scan still shows through the hottest spot."""
RAMP = np.array(  # heat 0 -> 1: dark blue, cyan, green, yellow, red (a jet-like ramp)
    [[0, 0, 128], [0, 160, 255], [0, 200, 0], [255, 230, 0], [255, 0, 0]], dtype=np.float32
)
NOTICE = "research software - not a medical device"
MAX_NAME = 72
"""Characters of the scan's path written on the picture; a longer one keeps its end (the file name)."""


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


def downsized(scan: np.ndarray, max_side: int) -> Image.Image:
    """The scan as an 8-bit grey image of at most `max_side` pixels a side (never enlarged)."""
    grey = Image.fromarray(_to_uint8(scan), mode="L")
    factor = max(grey.size) / max_side
    if factor > 1:
        grey = grey.resize((max(1, round(grey.width / factor)), max(1, round(grey.height / factor))), Image.Resampling.BOX)
    return grey


def blend(scan: np.ndarray, heatmap: np.ndarray, geometry, max_side: int = MAX_SIDE) -> Image.Image:
    """The scan (at most `max_side` pixels a side) with the heat-map blended in colour: the
    picture without its text band (the overlay's body, and the report's thumbnail)."""
    grey = downsized(scan, max_side)
    heat = heat_image(heatmap, geometry, (grey.height, grey.width))
    colour = heat.copy()
    colour.putpalette(_PALETTE)  # an "L" image with a palette becomes a "P" image
    colour = colour.convert("RGB")
    alpha = heat.point([int(round(OPACITY * level)) for level in range(256)])
    return Image.composite(colour, grey.convert("RGB"), alpha)


def render(scan: np.ndarray, record: dict, heatmap: np.ndarray, geometry, when: str | None = None,
           max_side: int = MAX_SIDE) -> Image.Image:
    """An RGB picture: a text band above `scan` (at most `max_side` pixels a side) with the
    heat-map blended in. The band says, in plain words (`edge.words`), the answer of `record`
    (the JSON record), the scan's file name, the `id` when there is one and the local time of the
    reading (`when`, UTC ISO text; None: now), with a legend of the colour scale. The hottest spot
    is circled only on a scan referred: on a routine scan nothing is drawn as if it were a finding.
    The band does not hide any of the scan. All pixel work is done by Pillow on 8-bit images."""
    scan_rgb = blend(scan, heatmap, geometry, max_side)
    lines = _lines(record, when)
    size = max(10, min(24, max(scan_rgb.width, 400) // 45))
    pad = size // 2
    step = size + pad // 2
    band = (len(lines) + 1) * step + pad  # the text, then the legend
    picture = Image.new("RGB", (scan_rgb.width, scan_rgb.height + band), (0, 0, 0))
    picture.paste(scan_rgb, (0, band))
    draw = ImageDraw.Draw(picture)
    font = _font(size)
    for i, line in enumerate(lines):
        draw.text((pad, pad // 2 + i * step), line, fill=(255, 255, 255), font=font)
    _legend(picture, draw, font, pad, pad // 2 + len(lines) * step, size)
    if record.get("triage") == "refer":
        peak = record["heatmap_peak"]
        r = band + (peak["row"] + 0.5) * scan_rgb.height / geometry.scan_shape[0] - 0.5
        c = (peak["col"] + 0.5) * scan_rgb.width / geometry.scan_shape[1] - 0.5
        radius = max(6, scan_rgb.width // 40)
        draw.ellipse((c - radius, r - radius, c + radius, r + radius), outline=(255, 255, 255), width=max(1, radius // 4))
    return picture


def _legend(picture: Image.Image, draw, font, left: int, top: int, size: int) -> None:
    """The colour scale, cool to hot, with what it means."""
    width = max(40, min(240, picture.width // 4))
    ramp = np.rint(colour_ramp(np.linspace(0.0, 1.0, width))).astype(np.uint8)
    bar = Image.fromarray(np.repeat(ramp[None], max(4, size * 2 // 3), axis=0), mode="RGB")
    picture.paste(bar, (left, top + (size - bar.height) // 2))
    draw.text((left + width + size // 2, top), f"blue to red: {HEAT_LEGEND}", fill=(255, 255, 255), font=font)


def write(path: str | Path, scan: np.ndarray, record: dict, heatmap: np.ndarray, geometry, when: str | None = None,
          max_side: int = MAX_SIDE) -> Path:
    """Render and write the PNG atomically (a killed run leaves the old file or none, never half),
    with the permissions the umask gives a new file, as the results log gets."""
    buffer = io.BytesIO()
    render(scan, record, heatmap, geometry, when, max_side).save(buffer, format="PNG", compress_level=1)  # speed over bytes
    atomic_write_bytes(path, buffer.getvalue())
    os.chmod(path, new_file_mode())
    return Path(path)


def _lines(record: dict, when: str | None) -> list[str]:
    about = str(record.get("file", "scan"))  # the path as given: two women's left.pgm differ by their folders
    if len(about) > MAX_NAME:
        about = "..." + about[-(MAX_NAME - 3):]
    if record.get("id"):
        about += f"   id {record['id']}"
    lines = [
        verdict(record),
        f"P(abnormal) {record['abnormal']:.2f}   P(malignant) {record['malignant']:.2f}",
        f"{about}   read {local_time(when)}",
    ]
    if record.get("contralateral"):
        lines.append(f"read beside the other breast, {Path(str(record['contralateral'])).name}")
    if record.get("quality"):
        lines.append(f"check the scan: {record['quality']}")
    lines += handling(record)
    if record.get("note"):
        lines.append(str(record["note"]))
    lines.append(NOTICE)
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


def overlay_name(scan_name: str | Path, digest: str) -> str:
    """`mdb028.pgm` with sha256 `3fa9...` -> `mdb028-3fa9c2d1e0b4.overlay.png`: a pure function of
    the scan (its name and its content), never of what else is in the run, so a later run can
    never give one woman's picture the name an earlier run gave another's."""
    from edge.scan.inputs import OVERLAY_SUFFIX

    stem = Path(str(scan_name)).stem or "scan"
    return f"{stem}-{digest[:12]}{OVERLAY_SUFFIX}"
