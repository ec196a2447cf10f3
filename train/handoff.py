"""The training handoff: `training.json`, what `edge-train` leaves beside `model.keras` for `edge-convert`.

One owner for the train -> convert contract: `write` is the only code that writes the file and
`read` the only code that reads it, with one clear error per problem. What the converter needs
is typed (input size, labels, outputs, triage, the reading stage, the heads); the rest (metrics, data,
configuration, timings) is carried into the model's manifest as a record of where it came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge import LABELS
from edge.errors import EdgeError
from edge.fileio import atomic_write_text, read_json_object
from edge.inference.heads import Heads
from edge.inference.manifest import OUTPUT_NAMES, expected_outputs

FILE = "training.json"


@dataclass(frozen=True)
class Triage:
    threshold: float  # refer when P(abnormal) >= threshold
    target_sensitivity: float
    chosen_on: str  # which scores the threshold was chosen on (never a test fold)


@dataclass(frozen=True)
class Handoff:
    """Everything the converter reads from training, and the record that travels on with the model."""

    input_size: int
    triage: Triage
    reading: dict[str, Any] | None = None  # edge.inference.reading.Reading.to_json(), or None: scan by scan
    labels: tuple[str, ...] = LABELS
    outputs: tuple[str, ...] = OUTPUT_NAMES  # with heads: edge.inference.heads.output_names, the cell features of each scale
    heads: dict[str, Any] | None = None  # edge.inference.heads.Heads.to_json(), run beside the network; None: heads in the network
    metrics: dict[str, Any] = field(default_factory=dict)  # headline out-of-fold figures with CIs
    data: dict[str, Any] = field(default_factory=dict)  # what the model was trained on
    record: dict[str, Any] = field(default_factory=dict)  # configuration, comparison, command, seconds

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def write(directory: str | Path, model: Any, handoff: Handoff) -> Path:
    """`model.keras` and `training.json` into `directory`; returns the model's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.keras"
    model.save(path)
    atomic_write_text(directory / FILE, handoff.to_json())
    return path


def read(path: str | Path) -> Handoff:
    """Read and check `training.json`; every problem is named in one EdgeError."""
    path = Path(path)
    raw = read_json_object(path, FILE, "edge-train writes it beside the model")
    triage = raw.get("triage") if isinstance(raw.get("triage"), dict) else {}
    problems = [key for key in ("input_size", "triage") if key not in raw]
    problems += [f"triage.{key}" for key in ("threshold", "target_sensitivity") if key not in triage]
    if problems:
        raise EdgeError(f"{path}: {FILE} lacks {', '.join(problems)}")
    labels = tuple(raw.get("labels") or LABELS)
    if labels != LABELS:
        raise EdgeError(f"{path}: labels {list(labels)} are not the MIAS order {list(LABELS)}")
    heads = raw.get("heads")
    expected = expected_outputs(heads if isinstance(heads, dict) else None)
    outputs = tuple(raw.get("outputs") or OUTPUT_NAMES)
    if outputs != expected:
        raise EdgeError(f"{path}: outputs {list(outputs)} are not {list(expected)}")
    try:
        handoff = Handoff(
            input_size=int(raw["input_size"]),
            triage=Triage(float(triage["threshold"]), float(triage["target_sensitivity"]), str(triage.get("chosen_on", ""))),
            reading=raw.get("reading"),
            outputs=outputs,
            heads=heads,
            metrics=dict(raw.get("metrics") or {}),
            data=dict(raw.get("data") or {}),
            record=dict(raw.get("record") or {}),
        )
    except (TypeError, ValueError) as exc:
        raise EdgeError(f"{path}: {FILE} has a field of the wrong type ({exc})") from None
    if handoff.heads is not None:
        try:  # in the form the model file carries (`Heads.to_json`), also for files written before it
            handoff = replace(handoff, heads=Heads.from_json(handoff.heads, len(LABELS)).to_json())
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeError(f"{path}: {FILE} has invalid heads ({exc})") from None
    if handoff.reading is not None:
        from edge.inference.reading import Reading

        try:
            Reading.from_json(handoff.reading)
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeError(f"{path}: {FILE} has an invalid reading stage ({exc})") from None
    return handoff
