"""Does a decoded image look like a mammogram at all? Refuse what plainly is not one.

A model answers whatever it is given: a portrait, a screenshot or a CT slice would get a
class, a probability and a triage as confident-looking as a real scan's. So before the model
runs, each image passes a few checks of what every mammogram shares, whichever scanner or film
digitiser made it:
- it is greyscale (a colour picture is a photo, a screenshot or a drawing; a grey scan saved
  as RGB has no colour and passes);
- it has enough pixels to show a breast (a thumbnail, an icon, a small CT or MR matrix do not);
- it is not blank;
- one bright region (the breast) on a dark background: the region covers a plausible share of
  the image, and what lies outside it is dark (a text page, a form, a gradient are bright
  around their dark strokes);
- the breast lies against one side of the image (the chest wall), while a CT or MR slice of
  a head or a body lies in the middle of its frame.

The checks look at the pixels only, never at the model's weights or outputs, so a new model
needs no retuning of them. Each limit keeps a margin beyond the development scans as the tests
measure them (all 258, mirrored, rescaled to 2000 and 512 pixels and 16-bit are read; see
tests/test_plausibility.py and reports/reliability/summary.json). What they cannot tell: a
greyscale photograph of a person or an object against a dark background may still pass.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PREFIX = "does not look like a mammogram"
MIN_SIDE = 384
"""Pixels on the shorter side. A digitised film or a digital mammogram has thousands; the
development scans rescaled to 512 have 512."""
CHROMA, MAX_COLOURFUL = 32, 0.01
"""A pixel is coloured when its channels differ by CHROMA levels or more; a picture is colour
when more than MAX_COLOURFUL of its pixels are (JPEG noise on a grey scan stays far below)."""
COARSE_SIDE = 128
"""The checks run on a copy about this many pixels on its longer side (a few ms on a Pi)."""
MIN_CONTRAST = 16
BREAST_SHARE = (0.05, 0.90)
"""Share of the image the bright region may cover (development scans: 0.11..0.68)."""
MAX_BACKGROUND = 0.15
"""Median level outside the bright region, as a share of the image's 1st..99th percentile range
(development scans: at most 0.06; a text page 0.34)."""
MIN_OFF_CENTRE = 0.04
"""How far the bright region's centre of mass lies from the image's middle column, as a share of
the width (development scans: at least 0.05; CT and MR slices: 0.00..0.03)."""


def colour_problem(image: Image.Image) -> str | None:
    """Why a colour-mode Pillow image is a colour picture, or None when its colours are grey."""
    small = image.convert("RGB")
    small.thumbnail((256, 256), Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.int16)
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    share = float((chroma >= CHROMA).mean())
    if share > MAX_COLOURFUL:
        return f"{PREFIX}: a colour picture ({share:.0%} of it in colour; mammograms are greyscale)"
    return None


def problem(scan: np.ndarray) -> str | None:
    """Why the decoded greyscale `scan` is not a mammogram, or None when it may be one."""
    from edge.preprocess import _breast_mask, _to_uint8, inverted_polarity

    rows, cols = scan.shape
    if min(rows, cols) < MIN_SIDE:
        return f"{PREFIX}: only {cols}x{rows} pixels (a thumbnail or a small image; a scan has at least {MIN_SIDE} a side)"
    grey = Image.fromarray(_to_uint8(scan), mode="L")
    factor = max(1, round(max(rows, cols) / COARSE_SIDE))
    coarse = np.asarray(grey.reduce(factor) if factor > 1 else grey)
    if int(coarse.max()) - int(coarse.min()) < MIN_CONTRAST:
        return f"{PREFIX}: blank or nearly uniform image"
    if inverted_polarity(coarse):  # judged as prepare() will read it: as its negative
        coarse = 255 - coarse
    region, islands, _ = _breast_mask(coarse)
    share = float(region.mean())
    if not BREAST_SHARE[0] <= share <= BREAST_SHARE[1]:
        return f"{PREFIX}: its bright region covers {share:.0%} of the image (a breast covers {BREAST_SHARE[0]:.0%}..{BREAST_SHARE[1]:.0%})"
    low, high = np.percentile(coarse, (1, 99))
    outside = coarse[~region & ~islands]
    background = (float(np.median(outside)) - low) / max(float(high - low), 1.0) if outside.size else 0.0
    if background > MAX_BACKGROUND:
        return f"{PREFIX}: the background around its bright region is not dark (a page, a screen or a photo?)"
    centre = abs(float(np.nonzero(region)[1].mean()) - (coarse.shape[1] - 1) / 2) / coarse.shape[1]
    if centre < MIN_OFF_CENTRE:
        return f"{PREFIX}: its bright region lies in the middle of the image, not against one side as a breast does (a CT or MR slice?)"
    return None
