"""The reader's heads in numpy: the quantized trunk's cell features -> heat-map, kind and malignancy.

Why here and not in the quantized graph: the heads are fitted on the board trunk's features
(`train.reader`: logistic regressions, and a cell head with one hidden layer), and their weights
are large and cancel (the neighbourhood
mean of a cell is close to the cell itself). Rounded to int8 inside the graph they gave the
cross-validated label on only 69% of the development scans and moved P(malignant | abnormal) by
0.2 on average (research/heads/heads_beside.md). In float on the board they cost about 7 ms
of numpy a scan (`edge-bench`'s postprocess on the 2-core x86 machine), and the board computes
what was cross-validated: the same function on the same features (the cell head's hidden
weights rounded to float32 in the model file, `_packed`).

A model with heads has one output per scale: `cells0` (the finest grid), `cells1`, ..., each
(1, g, g, C) dequantized cell features; the heads come with the manifest (`Heads.to_json`), and
the same heads lie inside the model file as TFLite metadata (`canonical`), so the model's sha256
covers them: new heads are a new model, and a manifest whose heads were edited is refused.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np


DIRECT = "every scan"
"""How the heads' JSON says that the malignancy head gives P(malignant) itself (trained on every scan),
not P(malignant | abnormal) (trained on abnormal scans only)."""

METADATA = "mias_edge_heads"
"""Name of the TFLite metadata entry that holds the heads inside the model file."""


def canonical(raw: dict[str, Any]) -> bytes:
    """The heads' JSON as the model file holds it: one spelling for one set of heads."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()


def held_in(content: bytes, raw: dict[str, Any]) -> bool:
    """Whether the model bytes `content` hold these heads as their metadata (`canonical`). The model's
    copy is found and parsed, not the manifest's spelt out again (the slower half of the check at load)."""
    marker = b'{"' + min(raw).encode() + b'":'  # canonical JSON sorts its keys: the smallest comes first
    start = content.find(marker)
    while start >= 0:
        try:
            if json.JSONDecoder().raw_decode(content[start:].decode("latin-1"))[0] == raw:
                return True
        except ValueError:  # those bytes were not the heads' JSON
            pass
        start = content.find(marker, start + 1)
    return False


def output_names(scales: int) -> tuple[str, ...]:
    """The names of a model's feature outputs, finest scale first."""
    return tuple(f"cells{k}" for k in range(scales))


@dataclass(frozen=True)
class Heads:
    """The learnt heads, as weights on the raw trunk features (standardisation folded in)."""

    cell_w: tuple[np.ndarray, ...]  # one (C,) per scale, or (2C,) with a context: on `neighbourhood` features (on the hidden units with `cell_hidden`)
    cell_b: tuple[float, ...]
    classes_w: np.ndarray  # (2C x scales, 7) on `pooled` features
    classes_b: np.ndarray  # (7,)
    malignant_w: np.ndarray  # (2C x scales,), or (3C x scales,) with the focused block
    malignant_b: float
    focus: float = 0.0  # sharpness of the focused pooling the malignancy head reads (0: none)
    context: int = 0  # the cell heads read each cell's context x context neighbourhood too (0: none)
    cell_hidden: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # per scale (W (d, h), b (h,)): a ReLU layer under cell_w (none: linear)
    malignant_direct: bool = False  # the malignancy head gives P(malignant) of any scan, not P(malignant | abnormal)
    abnormal_w: np.ndarray | None = None  # (2C x scales,) an image head on `pooled` features: a logit of abnormality (none: heat-map only)
    abnormal_b: float = 0.0

    @property
    def channels(self) -> int:
        """C, the trunk's feature channels the heads read."""
        inputs = self.cell_hidden[0][0].shape[0] if self.cell_hidden else len(self.cell_w[0])
        return inputs // (2 if self.context else 1)

    def cell_logits(self, features: np.ndarray, scale: int) -> np.ndarray:
        """The cell head's logit of every cell (n, g, g) from the cell features (n, g, g, C) of one scale."""
        hidden = self.cell_hidden[scale] if self.cell_hidden else None
        return cell_head(neighbourhood(features, self.context), hidden, self.cell_w[scale], self.cell_b[scale])

    def to_json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "focus": self.focus,
            "cell": [{"weights": _floats(w), "bias": float(b)} for w, b in zip(self.cell_w, self.cell_b)],
            **({"cell_hidden": [{"weights": _packed(w), "bias": _floats(b)} for w, b in self.cell_hidden]}
               if self.cell_hidden else {}),
            "classes": {"weights": [_floats(row) for row in self.classes_w], "bias": _floats(self.classes_b)},
            "malignant": {"weights": _floats(self.malignant_w), "bias": float(self.malignant_b),
                          **({"of": DIRECT} if self.malignant_direct else {})},
            **({"abnormal": {"weights": _floats(self.abnormal_w), "bias": float(self.abnormal_b)}}
               if self.abnormal_w is not None else {}),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], labels: int) -> "Heads":
        """The heads of a manifest; ValueError (or KeyError, TypeError) when they do not fit together."""
        context, focus = int(raw["context"]), float(raw["focus"])
        cell_w = tuple(np.asarray(c["weights"], np.float64) for c in raw["cell"])
        cell_b = tuple(float(c["bias"]) for c in raw["cell"])
        classes_w = np.asarray(raw["classes"]["weights"], np.float64)
        classes_b = np.asarray(raw["classes"]["bias"], np.float64)
        malignant_w = np.asarray(raw["malignant"]["weights"], np.float64)
        hidden = tuple((_matrix(h["weights"]), np.asarray(h["bias"], np.float64)) for h in raw.get("cell_hidden", ()))
        of = raw["malignant"].get("of")
        if of not in (None, DIRECT):
            raise ValueError(f"the malignancy head is of {of!r}; this runner knows only {DIRECT!r}")
        image = raw.get("abnormal")
        heads = cls(cell_w, cell_b, classes_w, classes_b, malignant_w, float(raw["malignant"]["bias"]), focus, context, hidden,
                    of == DIRECT, None if image is None else np.asarray(image["weights"], np.float64),
                    0.0 if image is None else float(image["bias"]))
        if not cell_w or any(w.ndim != 1 or w.shape != cell_w[0].shape for w in cell_w):
            raise ValueError("the cell heads must be one weight vector per scale, all of one length")
        if hidden and (len(hidden) != len(cell_w) or any(w.ndim != 2 or w.shape != hidden[0][0].shape or b.shape != (w.shape[1],)
                                                         or w.shape[1] != len(cell_w[0]) for w, b in hidden)):
            raise ValueError("the cell heads' hidden layers must be one (inputs, units) matrix and bias per scale, "
                             "as many units as the cell weights")
        c, scales = heads.channels, len(cell_w)
        if classes_w.shape != (2 * c * scales, labels) or classes_b.shape != (labels,):
            raise ValueError(f"classes head of shape {classes_w.shape} does not fit {scales} scales of {c} channels "
                             f"and {labels} labels")
        if malignant_w.shape != ((3 if focus else 2) * c * scales,):
            raise ValueError(f"malignancy head of shape {malignant_w.shape} does not fit the classes head")
        if heads.abnormal_w is not None and heads.abnormal_w.shape != (2 * c * scales,):
            raise ValueError(f"abnormality head of shape {heads.abnormal_w.shape} does not fit the classes head")
        if context and (context < 3 or context % 2 == 0):
            raise ValueError(f"context must be 0 or an odd neighbourhood side of at least 3, got {context}")
        return heads


def cell_head(x: np.ndarray, hidden: tuple[np.ndarray, np.ndarray] | None, w: np.ndarray, b: float) -> np.ndarray:
    """The cell head's logits on (..., d) cell features: w . x + b, through a ReLU layer (W, c) first if any."""
    if hidden is not None:
        x = np.maximum(x @ hidden[0] + hidden[1], 0.0)
    return x @ w + b


def _packed(matrix: np.ndarray) -> dict[str, Any]:
    """A hidden layer's weights as base64 of little-endian float32: as text, their 10^5 numbers made the
    model file 3.7 MB (5edda6c7b3dd, commit a23dabc's reports/fidelity; the board's budget is 2 MB). Float32
    keeps 7 significant digits: the board's answers stay those of the fitted heads to 10^-6."""
    return {"float32": base64.b64encode(np.asarray(matrix, "<f4").tobytes()).decode("ascii"), "shape": list(matrix.shape)}


def _matrix(raw: Any) -> np.ndarray:
    """A weight matrix from the heads' JSON: `_packed`, or nested lists (manifests written before it)."""
    if not isinstance(raw, dict):
        return np.asarray(raw, np.float64)
    shape = tuple(int(n) for n in raw["shape"])
    values = np.frombuffer(base64.b64decode(raw["float32"], validate=True), "<f4")
    if len(shape) != 2 or values.size != shape[0] * shape[1]:
        raise ValueError(f"packed weights of {values.size} values do not make a matrix of shape {shape}")
    return values.reshape(shape).astype(np.float64)


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values).reshape(-1)]


def neighbourhood(features: np.ndarray, k: int) -> np.ndarray:
    """(n, g, g, 2C): each cell's features, then the mean features of its k x k neighbourhood (k = 0:
    the features alone), over the cells inside the grid only."""
    if not k:
        return features
    r = k // 2
    total, count = features, np.ones(features.shape[1:3], features.dtype)
    for axis in (1, 2):  # a box sum is separable: rows, then columns
        total, count = _box_sum(total, r, axis), _box_sum(count, r, axis - 1)
    return np.concatenate([features, total / count[None, :, :, None]], axis=-1)


def _box_sum(x: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Sum of each index's 2r + 1 neighbours along `axis`, those outside the array left out."""
    x = np.moveaxis(x, axis, 0)
    out = x.copy()
    for shift in range(1, r + 1):
        out[shift:] += x[:-shift]
        out[:-shift] += x[shift:]
    return np.moveaxis(out, 0, axis)


def pooled(scales: list[np.ndarray], heads: "Heads | None" = None) -> np.ndarray:
    """[global average, global max(, focused by `heads`' cell head when they have a focus)] of each
    scan's cell features at each scale."""
    parts = []
    for k, f in enumerate(scales):
        parts += [f.mean((1, 2)), f.max((1, 2))]
        if heads is not None and heads.focus:
            parts.append(focused(f, heads.cell_logits(f, k), heads.focus))
    return np.concatenate(parts, axis=1)


def focused(features: np.ndarray, logits: np.ndarray, focus: float) -> np.ndarray:
    """(n, C): each scan's cell features averaged with softmax(focus x cell logit) weights (the
    logits of the cell head, which reads the neighbourhood too with a context; the averaged
    features stay the cell's own)."""
    flat = features.reshape(len(features), -1, features.shape[-1])
    z = logits.reshape(len(features), -1) * focus
    weights = np.exp(z - z.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("nc,ncd->nd", weights, flat)


@dataclass(frozen=True)
class Outputs:
    """What the heads make of the cell features of a set of scans."""

    classes: np.ndarray  # (n, 7) P(class | abnormal)
    abnormal: np.ndarray  # (n,) the hottest cell
    malignant: np.ndarray  # (n,) P(malignant | abnormal), or P(malignant) with `Heads.malignant_direct`
    heatmap: np.ndarray  # (n, g, g)
    image: np.ndarray | None = None  # (n,) the abnormality head's logit (`Heads.abnormal_w`), if any


def outputs(scales: list[np.ndarray], heads: Heads) -> Outputs:
    """The heads on cell features (n, g, g, C) at each scale, finest first, in float64.

    The heat-map is the mean of the scales' cell probabilities, each coarser grid repeated onto
    the finest one (a lesion is found by whichever scale sees it best)."""
    grid = scales[0].shape[1]
    heat = np.mean([_upsample(_sigmoid(heads.cell_logits(f, k)), grid // f.shape[1]) for k, f in enumerate(scales)], axis=0)
    pool = pooled(scales)
    image = None if heads.abnormal_w is None else pool @ heads.abnormal_w + heads.abnormal_b
    logits = pool @ heads.classes_w + heads.classes_b
    logits -= logits.max(1, keepdims=True)
    classes = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    if heads.focus:  # the malignancy head also reads the focused block
        pool = pooled(scales, heads)
    malignant = _sigmoid(pool @ heads.malignant_w + heads.malignant_b)
    return Outputs(classes, heat.reshape(len(heat), -1).max(1), malignant, heat, image)


def _upsample(heat: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(heat, factor, axis=1), factor, axis=2) if factor > 1 else heat


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))
