"""The manifest that travels with a model: what it expects, what it returns, and how it was judged.

It lives beside the model as `<model stem>.json` (model.tflite -> model.json). The runner
trusts it for labels, input size, output order and the triage threshold, and refuses a model
whose sha256 differs from the one recorded here: a mismatched pair is a wrong answer waiting.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.inference.heads import output_names
from edge.fileio import atomic_write_text, read_json_object, sha256_bytes

INPUT_DTYPES = ("uint8", "int8", "int16")
"""Model input types the board feeds prepared pixels to: an int8 model's uint8 or int8, a 16x8 model's int16."""

FORMAT = 1
OUTPUT_NAMES = ("classes", "abnormal", "malignant", "heatmap")


@dataclass(frozen=True)
class Manifest:
    """What the runner needs to know about a model file, and the record of where it came from."""

    model_file: str  # file name, resolved beside the manifest
    sha256: str
    labels: tuple[str, ...]
    input_size: int  # the model input is (1, input_size, input_size, 1), from edge.preprocess.prepare
    input_dtype: str  # "uint8" or "int8"
    outputs: dict[str, int]  # output name -> position in the interpreter's get_output_details()
    triage_threshold: float  # P(abnormal) at or above it -> "refer"
    target_sensitivity: float  # the share of the women with a finding the threshold was chosen to refer, inside training folds
    info: dict[str, Any] = field(default_factory=dict)  # data split, metrics, versions, quantization...
    reading: dict[str, Any] | None = None  # the exam-level stage (edge.inference.reading.Reading); None: scan by scan
    heads: dict[str, Any] | None = None  # edge.inference.heads.Heads on the model's cell-feature outputs; None: the four OUTPUT_NAMES
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


HEADLINE_FIGURES = (
    ("auc_abnormal", "normal-vs-abnormal ROC AUC"),
    ("auc_malignant", "malignant-vs-rest ROC AUC"),
    ("balanced_accuracy", "7-class balanced accuracy"),
    ("sensitivity_at_threshold", "sensitivity at the triage threshold"),
    ("specificity_at_threshold", "specificity at the triage threshold"),
    ("woman_sensitivity", "per woman (referred when either breast is): sensitivity"),
    ("woman_specificity", "per woman: specificity"),
)


def headline_figures(manifest: Manifest) -> list[str]:
    """The model's headline out-of-fold figures as its manifest records them, in words:
    `normal-vs-abnormal ROC AUC 0.701 (95% CI 0.616-0.773)` (what --version and the report show),
    then what its P(malignant) is when it has no malignancy head (`no_malignancy_head`)."""
    metrics = manifest.info.get("metrics") or {}
    figures = []
    for key, name in HEADLINE_FIGURES:
        figure = metrics.get(key)
        if isinstance(figure, dict) and "value" in figure:
            ci = figure.get("ci95") or ()
            interval = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if len(ci) == 2 else ""
            figures.append(f"{name} {figure['value']:.3f}{interval}")
    rate = no_malignancy_head(manifest.heads)
    if rate is not None:
        figures.append(f"P(malignant) is P(abnormal) x {rate:.2f}: this model does not tell malignant findings from benign ones")
    return figures


def no_malignancy_head(heads: dict[str, Any] | None) -> float | None:
    """The training rate of malignancy among abnormal scans that stands in for a malignancy head (all its
    weights zero: training found no head that beat the rate); None when the heads have one."""
    head = (heads or {}).get("malignant")
    if not isinstance(head, dict) or any(head.get("weights") or [1.0]):
        return None
    return 1.0 / (1.0 + math.exp(-float(head["bias"])))


def manifest_path_for(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_suffix(".json")


def save_manifest(manifest: Manifest, path: str | Path) -> None:
    atomic_write_text(path, manifest.to_json())


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest; every problem is an `EdgeError` naming the file."""
    path = Path(path)
    raw = read_json_object(path, "model manifest", "it must lie beside the model")
    required = [name for name in Manifest.__dataclass_fields__ if name not in ("info", "format", "reading", "heads")]
    missing = [name for name in required if name not in raw]
    if missing:
        raise EdgeError(f"{path}: model manifest lacks {', '.join(missing)}")
    if raw.get("format", FORMAT) != FORMAT:
        raise EdgeError(f"{path}: manifest format {raw.get('format')} is not {FORMAT}; update mias-edge")
    try:
        manifest = Manifest(
            model_file=str(raw["model_file"]),
            sha256=str(raw["sha256"]).lower(),
            labels=tuple(str(label) for label in raw["labels"]),
            input_size=int(raw["input_size"]),
            input_dtype=str(raw["input_dtype"]),
            outputs={str(k): int(v) for k, v in dict(raw["outputs"]).items()},
            triage_threshold=float(raw["triage_threshold"]),
            target_sensitivity=float(raw["target_sensitivity"]),
            info=dict(raw.get("info") or {}),
            reading=dict(raw["reading"]) if raw.get("reading") is not None else None,
            heads=dict(raw["heads"]) if raw.get("heads") is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise EdgeError(f"{path}: model manifest has a field of the wrong type ({exc})") from None
    problems = []
    expected = expected_outputs(manifest.heads)
    if set(manifest.outputs) != set(expected):
        problems.append(f"outputs must be {', '.join(expected)}")
    if manifest.input_dtype not in INPUT_DTYPES:
        problems.append(f"input_dtype {manifest.input_dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
    if not 0.0 <= manifest.triage_threshold <= 1.0:
        problems.append("triage_threshold is outside 0..1")
    if len(manifest.sha256) != 64:
        problems.append("sha256 is not a hex digest")
    if problems:
        raise EdgeError(f"{path}: model manifest is invalid: " + "; ".join(problems))
    return manifest


def expected_outputs(heads: dict[str, Any] | None) -> tuple[str, ...]:
    """The output names of a model: its cell features at each scale when heads come with it, else the four answers."""
    if heads is None:
        return OUTPUT_NAMES
    cells = heads.get("cell") if isinstance(heads, dict) else None
    return output_names(len(cells) if isinstance(cells, list) else 0)


def read_verified_model(manifest: Manifest, model_path: str | Path) -> bytes:
    """The model's bytes, after checking them against the manifest's sha256.

    The interpreter is then built from these very bytes, so what was checked is what runs.
    """
    model_path = Path(model_path)
    try:
        content = model_path.read_bytes()
    except FileNotFoundError:
        raise EdgeError(f"{model_path}: model file not found") from None
    except OSError as exc:
        raise EdgeError(f"{model_path}: model file cannot be read ({exc.strerror})") from None
    return verify_model_bytes(manifest, content, model_path)


def verify_model_bytes(manifest: Manifest, content: bytes, model_path: str | Path) -> bytes:
    """`content` itself, or an EdgeError when its sha256 is not the manifest's."""
    actual = sha256_bytes(content)
    if actual != manifest.sha256:
        raise EdgeError(
            f"{model_path}: sha256 {actual[:12]}... does not match its manifest ({manifest.sha256[:12]}...); "
            "the model is damaged, tampered with, or paired with the wrong manifest: refused"
        )
    return content
