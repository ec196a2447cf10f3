"""Does a decoded image look like a mammogram at all? Refuse what plainly is not one.

A model answers whatever it is given: a portrait, a screenshot or a CT slice would get a
class, a probability and a triage as confident-looking as a real scan's. So before the model
runs, each image passes the checks below. A refusal is a woman the centre does not read, so
the checks are set never to refuse a real mammogram, however it was saved, and to refuse most
of what is not one:
- it is greyscale (a colour picture is a photo, a screenshot or a drawing; a grey scan saved
  as RGB has no colour and passes);
- it is not a thumbnail or an icon (MIN_LONG_SIDE);
- it is not blank;
- its score is above the limit: a small ensemble of decision stumps and trees (`edge/scan/gate.json`,
  fitted by `scripts/gate_corpus.py` on the corpora of `train.gate_corpus`) over FEATURES of a
  coarse copy (about 128 pixels a side) turned so the breast would lie against the left side:
  the bright region's shape (one region against one side, its edge a smooth curve), a dark
  even background, breast-like texture (local binary patterns, edge directions, grey levels),
  how symmetric the picture is;
- a small image network's reading of the same copy (`edge/scan/gate.tflite`, ImageNet
  features, `train.gate_net`) scores above its own limit: a logistic regression in gate.json.
  The trees know what a breast's outline looks like; the network knows what photos, drawings
  and other scans look like, and refuses many the trees, fitted on a few hundred, let through.
Each limit lies below the lowest out-of-fold score of any real mammogram of the corpus, with a
margin (docs/reliability.md has the figures).

The refusal says which cue is furthest outside what real mammograms show, in words. The checks
look at the pixels only, never at the model's weights or outputs, so a new model needs no
refitting of them. numpy, pillow and the TFLite runtime; a few ms on a coarse copy.
"""

from __future__ import annotations

import hashlib
import json
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from edge.runtime import Quantization

PREFIX = "does not look like a mammogram"
MIN_LONG_SIDE = 144
"""Pixels on the longer side below which an image is a thumbnail or an icon. The smallest real
image of the corpus (a digital image cropped close to its breast) has 176."""
CHROMA, MAX_COLOURFUL = 32, 0.01
"""A pixel is coloured when its channels differ by CHROMA levels or more; a picture is colour
when more than MAX_COLOURFUL of its pixels are (JPEG noise on a grey scan stays far below)."""
COARSE_SIDE = 128
"""The checks run on a copy about this many pixels on its longer side (a few ms on a Pi)."""
MIN_CONTRAST = 16
GATE_FILE = Path(__file__).with_name("gate.json")
NETWORK_FILE = Path(__file__).with_name("gate.tflite")
NETWORK_SIDE = 128
"""The image network reads the turned coarse copy stretched to this many pixels a side."""

FEATURES = {  # name -> (what it measures, the cue it belongs to); on the coarse copy, turned
    "share": ("share of the image the bright region covers", "shape"),
    "background": ("median level outside it, in the 1st..99th percentile range", "background"),
    "bg_spread": ("10th..90th percentile spread of the levels outside it", "background"),
    "dark": ("share of the image within a tenth of the range of its darkest level", "background"),
    "islands": ("share of the image in other bright islands (labels, markers, text)", "background"),
    "wall": ("share of the side it covers most (a breast lies against the chest wall)", "shape"),
    "opposite": ("share of the opposite side it covers", "shape"),
    "top_bottom": ("share of the top or bottom side it covers, the larger", "shape"),
    "anchored": ("its area over the area between the wall and its edge, row by row", "shape"),
    "start": ("mean distance of its rows' first pixel from the wall", "shape"),
    "edge_rough": ("mean second difference of its edge curve (its extent row by row)", "edge"),
    "edge_jumps": ("share of rows where the edge curve jumps", "edge"),
    "edge_turns": ("turns of the smoothed edge curve", "edge"),
    "extent_max": ("its farthest reach from the wall", "shape"),
    "rows_covered": ("share of the rows it reaches", "shape"),
    "holes": ("share of dark pixels between the wall and its edge", "shape"),
    "band0": ("mean level in the quarter of its depth nearest the wall", "profile"),
    "band1": ("mean level in the second quarter", "profile"),
    "band2": ("mean level in the third quarter", "profile"),
    "band3": ("mean level in the quarter nearest its edge", "profile"),
    "inside_mean": ("mean level inside it", "profile"),
    "inside_spread": ("spread of the levels inside it", "texture"),
    "grad_in": ("mean gradient inside it", "texture"),
    "grad_in_p90": ("90th percentile of the gradient inside it", "texture"),
    "grad_out": ("mean gradient outside it", "background"),
    "strong_edges": ("share of the image on a strong edge", "lines"),
    "axis_ratio": ("horizontal and vertical steps over diagonal ones", "lines"),
    "levels_used": ("share of the 256 grey levels the picture uses", "levels"),
    "top_level_share": ("share of the picture in its three commonest levels", "levels"),
    "entropy_in": ("entropy of the levels inside it", "texture"),
    "saturated": ("share of the picture at its brightest level", "levels"),
    "lr_sym": ("left-right sameness", "symmetry"),
    "ud_sym": ("top-bottom sameness", "symmetry"),
    "aspect": ("shorter side over longer side", "shape"),
    **{f"lbp{k}": (f"share of its pixels of local binary pattern {k} (uniform, radius 1)", "texture") for k in range(10)},
    **{f"lbp2_{k}": (f"the same at half scale, pattern {k}", "texture") for k in range(10)},
    **{f"orient{k}": (f"share of the gradient along direction {k} of 8", "lines") for k in range(8)},
    **{f"level{k}": (f"share of its pixels in grey-level band {k} of 8", "texture") for k in range(8)},
}

CUES = {  # what the refusal says when a cue's feature lies furthest outside real mammograms
    "shape": "its bright region does not have the shape of a breast against one side of the image",
    "background": "the background around its bright region is not dark and even (a page, a screen or a photo?)",
    "edge": "the edge of its bright region is not the smooth curve of a breast",
    "profile": "its brightness does not fall off toward the skin line as a breast's does",
    "texture": "its texture is not that of breast tissue",
    "lines": "it has the straight lines of a page, a form, a screen or a drawing",
    "levels": "it has too few grey levels (a drawing, a chart or a screenshot?)",
    "symmetry": "it is symmetric as a CT or MR slice, a chest X-ray or a face is; a breast is not",
}
GENERIC = "its shape, background and texture together are unlike a breast's"
NETWORK_REASON = "an image network reads it as another kind of picture (a photo, a drawing, another kind of scan?)"


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


def coarse_copy(scan: np.ndarray) -> np.ndarray:
    """The 8-bit coarse copy the checks read (about COARSE_SIDE pixels on its longer side)."""
    from edge.preprocess import _to_uint8

    grey = Image.fromarray(_to_uint8(scan), mode="L")
    factor = max(1, round(max(scan.shape) / COARSE_SIDE))
    return np.asarray(grey.reduce(factor) if factor > 1 else grey)


def blank(image: np.ndarray) -> bool:
    """Whether `image` (a coarse copy, or any greyscale array) spans too few grey levels to show anything."""
    return int(image.max()) - int(image.min()) < MIN_CONTRAST


def problem(scan: np.ndarray) -> str | None:
    """Why the decoded greyscale `scan` is not a mammogram, or None when it may be one."""
    rows, cols = scan.shape
    if max(rows, cols) < MIN_LONG_SIDE:
        return f"{PREFIX}: only {cols}x{rows} pixels (a thumbnail or an icon; a scan has at least {MIN_LONG_SIDE} on its longer side)"
    coarse = coarse_copy(scan)
    if blank(coarse):
        return f"{PREFIX}: blank or nearly uniform image"
    view = turned(coarse)
    values = features(view)
    gate = _gate()
    value = score(values, gate)
    if value < gate["limit"]:
        return f"{PREFIX}: {reason(values, gate)} (score {value:.1f}, limit {gate['limit']:.1f})"
    seen, line = network_score(network_features(network_input(view[0])), gate), gate["network"]["limit"]
    if seen < line:
        return f"{PREFIX}: {NETWORK_REASON} (score {seen:.1f}, limit {line:.1f})"
    return None


def reason(values: np.ndarray, gate: dict) -> str:
    """The cue whose feature lies furthest outside the range real mammograms show, in words."""
    low, high = np.asarray(gate["real_low"]), np.asarray(gate["real_high"])
    span = np.maximum(high - low, 1e-6)
    outside = np.maximum(low - values, values - high) / span
    k = int(np.argmax(outside))
    if outside[k] <= 0:
        return GENERIC
    return CUES[FEATURES[list(FEATURES)[k]][1]]


@lru_cache(maxsize=1)
def _gate() -> dict:
    gate = json.loads(GATE_FILE.read_text())
    if gate["features"] != list(FEATURES):
        raise RuntimeError(f"{GATE_FILE} was fitted on other features; refit it (scripts/gate_corpus.py)")
    if gate["network"]["sha256"] != hashlib.sha256(NETWORK_FILE.read_bytes()).hexdigest():
        raise RuntimeError(f"{GATE_FILE} was fitted on another {NETWORK_FILE.name}; refit it (scripts/gate_corpus.py)")
    trees, network = gate["trees"], gate["network"]
    gate["arrays"] = {key: np.asarray(trees[key]) for key in ("feature", "threshold", "left", "right", "value")}
    gate["network_arrays"] = {key: np.asarray(network[key], dtype=np.float64) for key in ("mean", "scale", "coef")}
    return gate


@lru_cache(maxsize=1)
def _network() -> tuple:
    """The network's interpreter (builtin kernels: the same features, to a ten-thousandth, on every
    runtime) and a lock: batches decode and check scans in worker threads, and an interpreter runs
    one at a time."""
    from edge.runtime import make_interpreter

    return make_interpreter(NETWORK_FILE.read_bytes(), threads=1, kernels="builtin"), threading.Lock()


def network_input(upright: np.ndarray) -> np.ndarray:
    """What the network reads: the turned coarse copy (turned()[0]), NETWORK_SIDE pixels a side (uint8)."""
    picture = Image.fromarray(upright).resize((NETWORK_SIDE, NETWORK_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(picture)


def network_features(picture: np.ndarray) -> np.ndarray:
    """The network's pooled features of a network_input picture (float32)."""
    interpreter, lock = _network()
    with lock:
        given, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.set_tensor(given["index"], picture[None, :, :, None].astype(given["dtype"]))
        interpreter.invoke()
        values = interpreter.get_tensor(out["index"])[0]
    return Quantization.of(out).dequantize(values)


def network_score(values: np.ndarray, gate: dict | None = None) -> float:
    """The logistic regression's logit on the network's features (above 0: more like the real mammograms)."""
    gate = gate or _gate()
    a = gate["network_arrays"]
    return float((values - a["mean"]) / a["scale"] @ a["coef"] + gate["network"]["intercept"])


def score(values: np.ndarray, gate: dict | None = None) -> float:
    """The ensemble's score (a logit: above 0, more like the real mammograms it was fitted on)."""
    gate = gate or _gate()
    a = gate["arrays"] if "arrays" in gate else {k: np.asarray(v) for k, v in gate["trees"].items()}
    node = np.zeros(a["feature"].shape[0], dtype=np.int64)  # every tree at its root
    trees = np.arange(node.size)
    for _ in range(gate["trees"]["depth"]):
        feature = a["feature"][trees, node]
        leaf = feature < 0
        go_left = values[np.maximum(feature, 0)] <= a["threshold"][trees, node]
        node = np.where(leaf, node, np.where(go_left, a["left"][trees, node], a["right"][trees, node]))
    return float(gate["trees"]["baseline"] + a["value"][trees, node].sum())


def turned(coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coarse copy as prepare() will read it (a negative turned back), rotated by a multiple
    of 90 degrees so that the side its bright region covers most is on the left; with its bright
    region and the other bright islands (edge.preprocess's breast mask)."""
    from edge.preprocess import _breast_mask, inverted_polarity

    if inverted_polarity(coarse):
        coarse = 255 - coarse
    region, islands, _ = _breast_mask(coarse)
    sides = [region[:, 0].mean(), region[0].mean(), region[:, -1].mean(), region[-1].mean()]  # left, top, right, bottom
    k = int(np.argmax(sides))
    return tuple(np.ascontiguousarray(np.rot90(a, k)) for a in (coarse, region, islands))


def features(view: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """FEATURES of a coarse copy as turned() gives it, in that order (float32)."""
    c, region, islands = view
    v = c.astype(np.float32)
    h, w = v.shape
    low, high = np.percentile(v, (1, 99))
    z = (v - low) / max(float(high - low), 1.0)
    outside, inside = z[~region & ~islands], z[region]
    rows_any = region.any(axis=1)
    last = np.where(rows_any, w - np.argmax(region[:, ::-1], axis=1), 0) / w  # the edge curve
    first = np.where(rows_any, np.argmax(region, axis=1), 0) / w
    d1, d2 = np.diff(last), np.abs(np.diff(last, 2))
    smooth = np.convolve(last, np.ones(5) / 5, mode="same")
    turns = np.sign(np.round(np.diff(smooth), 3))
    turns = turns[turns != 0]
    cols = np.arange(w)[None, :]
    hull = cols < (last * w)[:, None]
    depth = np.where(hull, cols / np.maximum(last * w, 1)[:, None], -1)
    bands = []
    for a, b in ((0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
        band = region & (depth >= a) & (depth < b)
        bands.append(float(z[band].mean()) if band.any() else 0.0)
    gx, gy = np.abs(np.diff(z, axis=1))[:-1, :], np.abs(np.diff(z, axis=0))[:, :-1]
    gradient = np.hypot(gx, gy)
    within = region[:-1, :-1] & region[1:, :-1] & region[:-1, 1:]
    diagonal = np.abs(z[1:, 1:] - z[:-1, :-1])
    histogram = np.bincount(c.ravel(), minlength=256).astype(np.float64) / c.size
    inner = np.bincount(c[region].ravel(), minlength=256).astype(np.float64)
    inner = inner[inner > 0] / max(inner.sum(), 1.0)
    half_h, half_w = h // 2 * 2, w // 2 * 2
    half = z[:half_h, :half_w].reshape(half_h // 2, 2, half_w // 2, 2).mean((1, 3))
    values = [
        region.mean(),
        float(np.median(outside)) if outside.size else 0.0,
        float(np.percentile(outside, 90) - np.percentile(outside, 10)) if outside.size else 0.0,
        float((z <= 0.1).mean()),
        islands.mean(),
        region[:, 0].mean(),
        region[:, -1].mean(),
        max(region[0].mean(), region[-1].mean()),
        float(region.sum() / max(1.0, (last * w).sum())),
        float(first[rows_any].mean()) if rows_any.any() else 1.0,
        float(d2.mean()) if d2.size else 0.0,
        float((np.abs(d1) > 0.08).mean()) if d1.size else 0.0,
        float((np.diff(turns) != 0).sum()) if turns.size > 1 else 0.0,
        float(last.max()),
        float(rows_any.mean()),
        float((hull & ~region).sum() / max(1, hull.sum())),
        *bands,
        float(inside.mean()) if inside.size else 0.0,
        float(inside.std()) if inside.size else 0.0,
        float(gradient[within].mean()) if within.any() else 0.0,
        float(np.percentile(gradient[within], 90)) if within.any() else 0.0,
        float(gradient[~within].mean()) if (~within).any() else 0.0,
        float((gradient > 0.2).mean()),
        _axis_ratio(z, diagonal),
        float((histogram > 0).sum() / 256),
        float(np.sort(histogram)[-3:].sum()),
        float(-(inner * np.log2(inner)).sum() / 8),
        float((c >= c.max()).mean()),
        float(1 - np.abs(z - z[:, ::-1]).mean()),
        float(1 - np.abs(z - z[::-1]).mean()),
        float(min(h, w) / max(h, w)),
        *_patterns(z, region),
        *_patterns(half, region[:half_h:2, :half_w:2]),
        *_directions(z),
        *(np.histogram(np.clip(inside, 0, 1), bins=8, range=(0, 1))[0] / max(inside.size, 1)),
    ]
    return np.asarray(values, dtype=np.float32)


def _axis_ratio(z: np.ndarray, diagonal: np.ndarray) -> float:
    """Horizontal and vertical steps over diagonal ones: text, forms and screens are axis-aligned."""
    across = np.abs(np.diff(z, axis=1))[1:-1, :-1]
    down = np.abs(np.diff(z, axis=0))[:-1, 1:-1]
    if not across.size:
        return 1.0
    diagonal = diagonal[:-1, :-1][: across.shape[0], : across.shape[1]]
    return float((across.sum() + down.sum() + 1e-3) / (2 * diagonal.sum() + 1e-3))


def _patterns(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Uniform local binary patterns (8 neighbours, radius 1; 9 uniform codes and the rest) of
    the pixels in `mask`: their shares."""
    h, w = z.shape
    if h < 3 or w < 3:
        return np.zeros(10)
    centre = z[1:-1, 1:-1]
    steps = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    bits = np.stack([z[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] >= centre + 0.02 for dy, dx in steps])
    changes = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    code = np.where(changes <= 2, bits.sum(axis=0), 9)
    inner = mask[1:-1, 1:-1]
    if inner.sum() < 10:
        return np.zeros(10)
    return np.bincount(code[inner].ravel(), minlength=10)[:10] / inner.sum()


def _directions(z: np.ndarray) -> np.ndarray:
    """The gradient's strength along 8 directions, as shares."""
    gx, gy = z[1:-1, 2:] - z[1:-1, :-2], z[2:, 1:-1] - z[:-2, 1:-1]
    strength = np.hypot(gx, gy)
    direction = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * 8).astype(int), 7)
    histogram = np.bincount(direction.ravel(), weights=strength.ravel(), minlength=8)[:8]
    return histogram / max(histogram.sum(), 1e-6)
