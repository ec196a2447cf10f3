"""One model, loaded once, classifying one decoded scan at a time.

A `Classifier` does all per-model work when it is built: it checks the model against its
manifest (sha256), builds the interpreter from the very bytes it checked, and caches tensor
indices, quantization parameters, output positions and the label order. Per scan it only
prepares the image, sets the input, invokes and dequantizes four small outputs.

The steps are also callable one by one (`prepare`, `set_input` + `invoke`, `read_outputs`,
`postprocess`), so `edge-bench` can time the bare invoke against the whole path.

Model contract (what `edge-convert` writes; positions come from `manifest.outputs`):
- input (1, S, S, 1), uint8 or int8 (int8 activations) or int16 (16x8, the shipped model), S = manifest.input_size; its real (dequantized) value
  is the grey level 0..255 of `edge.preprocess.prepare`'s image;
- with `manifest.heads` (the shipped model): the cell features of each scale, `cells0` (1, g, g, C)
  on the finest grid, `cells1`, ..., which `edge.inference.heads` turns into the four values below in float;
- without: classes (1, 7) probabilities in manifest.labels order; abnormal (1, 1); malignant
  (1, 1); heatmap (1, h, w) (or (1, h, w, 1)) in 0..1 on the model-input square.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edge import LABELS
from edge.errors import EdgeError
from edge.inference.heads import Heads, held_in, outputs as head_outputs
from edge.inference.manifest import INPUT_DTYPES, Manifest, expected_outputs, load_manifest, manifest_path_for, read_verified_model, verify_model_bytes
from edge.preprocess import Geometry, Prepared, prepare
from edge.inference.reading import Reading, answer as reading_answer, scan_evidence
from edge.runtime import Quantization

DEFAULT_MODEL_FILE = "model.tflite"
ROUND = 4
"""Decimals kept in records: an int8 output has a resolution of 1/256 anyway."""


def default_model_path(variant: str = DEFAULT_MODEL_FILE) -> Path:
    """The model shipped inside the package (edge/models/<variant>).

    The package's own folder, as importlib.resources.files("edge.models") gives it for an
    installed (not zipped) package, without importing importlib.resources (about 20 ms of a
    cold start here, several times that on a Pi)."""
    import edge.models

    return Path(next(iter(edge.models.__path__))) / variant


@dataclass(frozen=True, eq=False)
class Evidence:
    """One scan's dequantized model outputs, before the exam-level reading."""

    heat: np.ndarray  # edge.inference.reading.scan_evidence: of the heat-map (and the abnormality head's logit)
    classes: np.ndarray  # P(class | abnormal), manifest label order
    abnormal: float  # the model's own P(abnormal) output (used when the manifest has no reading)
    malignant_if_abnormal: float  # or P(malignant) itself when the heads say so (`Heads.malignant_direct`)
    heatmap: np.ndarray = field(repr=False)
    geometry: Geometry
    quality: str | None
    inverted: bool = False


RawOutputs = tuple
"""The model's outputs as the interpreter returned them (quantized), in the order of `manifest.outputs`'
names (`edge.inference.manifest.expected_outputs`)."""


@dataclass(frozen=True, eq=False)
class Result:
    """The answer for one scan; `heatmap` lies on the model-input grid, `geometry` maps it to the scan."""

    label: str
    probabilities: dict[str, float]
    abnormal: float
    malignant: float
    triage: str  # "refer" or "routine"
    heatmap: np.ndarray = field(repr=False)
    geometry: Geometry
    quality: str | None
    model: str  # the model's sha256
    inverted: bool = False  # read as its negative (edge.preprocess.inverted_polarity)

    def heatmap_peak(self) -> tuple[int, int, float]:
        """(row, col) in scan pixels of the hottest heat-map cell's centre, and its value."""
        i, j = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        row, col = self.geometry.cell_centre_to_scan(i, j, self.heatmap.shape)
        return int(round(row)), int(round(col)), float(self.heatmap[i, j])

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready record (without the file name), as `edge-classify --json` prints it."""
        row, col, value = self.heatmap_peak()
        record: dict[str, Any] = {
            "label": self.label,
            "probabilities": {name: round(self.probabilities[name], ROUND) for name in LABELS},
            "abnormal": round(self.abnormal, ROUND),
            "malignant": round(self.malignant, ROUND),
            "triage": self.triage,
            "model": self.model,
            "heatmap_peak": {"row": row, "col": col, "value": round(value, ROUND)},
        }
        if self.quality:
            record["quality"] = self.quality
        if self.inverted:
            record["inverted"] = True
        return record


class Classifier:
    """A model and its manifest, checked and loaded once; `classify(scan)` per scan."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        manifest: Manifest | None = None,
        *,
        threads: int = 2,
        delegate: str = "",
        runtime: str = "auto",
        content: bytes | None = None,
        kernels: str = "builtin",
    ) -> None:
        """`content`, when given, is the model's bytes (checked against the manifest all the same);
        `model_path` then only names the model in messages. `kernels`: "builtin" (the same int8
        kernels on every runtime, as the device configs ask) or "default" (`edge.runtime`)."""
        from edge.runtime import make_interpreter

        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if manifest is None:
            if content is not None:
                raise EdgeError("a model given as bytes needs its manifest")
            if not self.model_path.is_file():
                raise EdgeError(f"{self.model_path}: model file not found")
            manifest = load_manifest(manifest_path_for(self.model_path))
        self.manifest = manifest
        self.sha256 = manifest.sha256
        self.threads, self.delegate, self.runtime, self.kernels = threads, delegate, runtime, kernels
        content = read_verified_model(manifest, self.model_path) if content is None else verify_model_bytes(manifest, content, self.model_path)
        if manifest.heads is not None and not held_in(content, manifest.heads):
            raise EdgeError(f"{self.model_path}: the heads in its manifest are not the ones inside the model "
                            "(edited, or paired with the wrong manifest): refused")
        try:
            with _quiet_native_stderr():  # the runtime's "INFO: Created ... XNNPACK delegate" chatter
                self.interpreter = make_interpreter(content, threads=threads, delegate=delegate, runtime=runtime, kernels=kernels)
        except EdgeError as exc:  # name the model: "cannot load the model" alone does not say which
            raise EdgeError(str(exc) if str(self.model_path) in str(exc) else f"{self.model_path}: {exc}") from None
        self._bind()

    @classmethod
    def from_bytes(
        cls, content: bytes, manifest: Manifest, *, threads: int = 2, delegate: str = "", runtime: str = "auto", kernels: str = "builtin"
    ) -> "Classifier":
        """The board's classifier on a model still in memory: what `edge-convert`'s fidelity gate runs."""
        return cls(Path(manifest.model_file), manifest, threads=threads, delegate=delegate, runtime=runtime, content=content, kernels=kernels)

    @classmethod
    def for_board(cls, board, model_path: str | Path | None = None, threads: int | None = None) -> "Classifier":
        """A classifier with a board's settings (`edge.inference.device.DeviceConfig`); `threads` overrides the board's."""
        model_path = Path(model_path) if model_path is not None else default_model_path(board.model)
        if not model_path.is_file():
            raise EdgeError(f"{model_path}: model file not found")
        manifest = load_manifest(manifest_path_for(model_path))
        board.check_model_dtype(manifest.input_dtype, model_path)
        return cls(
            model_path, manifest, threads=threads or board.threads, delegate=board.delegate, runtime=board.runtime, kernels=board.kernels
        )

    @property
    def two_at_once(self) -> bool:
        """Whether a batch gains by running two scans at once (`edge.results.batch`): kernels that use one
        thread (a 16x8 model's int16 ops, the reference kernels), no delegate, and a second core."""
        one_thread = self.input_dtype == np.int16 or self.kernels == "reference"
        return one_thread and not self.delegate and (os.cpu_count() or 1) >= 2

    def twin(self) -> "Classifier | None":
        """A second classifier of this model with its own interpreter when `two_at_once`, else None."""
        if not self.two_at_once:
            return None
        return Classifier(self.model_path, self.manifest, threads=1, runtime=self.runtime, kernels=self.kernels)

    def _bind(self) -> None:
        """Check the model against the manifest and cache everything a scan needs."""
        manifest, where = self.manifest, self.model_path
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise EdgeError(f"{where}: the model has {len(inputs)} inputs, expected 1")
        detail = inputs[0]
        size = manifest.input_size
        shape = tuple(int(n) for n in detail["shape"])
        if shape != (1, size, size, 1):
            raise EdgeError(f"{where}: model input shape {shape} is not (1, {size}, {size}, 1) as its manifest says")
        dtype = np.dtype(detail["dtype"])
        if dtype.name != manifest.input_dtype:
            raise EdgeError(f"{where}: model input is {dtype.name} but its manifest says {manifest.input_dtype}")
        self.input_size = size
        self.input_index = int(detail["index"])
        self.input_dtype = dtype
        self._input_table = _input_table(Quantization.of(detail), dtype, where)

        if sorted(manifest.labels) != sorted(LABELS):
            raise EdgeError(f"{where}: manifest labels {list(manifest.labels)} are not the MIAS classes {list(LABELS)}")
        self.labels = tuple(manifest.labels)
        try:
            self.reading = Reading.from_json(manifest.reading) if manifest.reading is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeError(f"{where}: the manifest's reading stage is invalid ({exc})") from None
        try:
            self.heads = Heads.from_json(manifest.heads, len(LABELS)) if manifest.heads is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeError(f"{where}: the manifest's heads are invalid ({exc})") from None
        names = expected_outputs(manifest.heads)
        positions = manifest.outputs
        if any(not 0 <= p < len(outputs) for p in positions.values()) or len(set(positions.values())) != len(names):
            raise EdgeError(f"{where}: manifest output positions {positions} do not fit the model's {len(outputs)} outputs")
        picked = [outputs[positions[name]] for name in names]
        shapes = [tuple(int(n) for n in detail["shape"]) for detail in picked]
        self.heatmap_shape = self._check_features(shapes) if self.heads else self._check_answers(shapes)
        self._output_index = tuple(int(detail["index"]) for detail in picked)
        self._output_quant = tuple(Quantization.of(detail) for detail in picked)

    def _check_features(self, shapes: list[tuple[int, ...]]) -> tuple[int, int]:
        """Each scale's cell features fit the heads; the heat-map lies on the finest grid."""
        for name, shape in zip(expected_outputs(self.manifest.heads), shapes):
            if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != self.heads.channels:
                raise EdgeError(f"{self.model_path}: output {name} has shape {shape}, expected (1, g, g, {self.heads.channels})")
            if shapes[0][1] % shape[1]:
                raise EdgeError(f"{self.model_path}: output {name}'s grid {shape[1]} does not divide the finest, {shapes[0][1]}")
        return shapes[0][1], shapes[0][2]

    def _check_answers(self, shapes: list[tuple[int, ...]]) -> tuple[int, int]:
        """classes, abnormal, malignant and heatmap have the contract's sizes; the heat-map's shape."""
        for name, shape, count in zip(("classes", "abnormal", "malignant"), shapes, (len(LABELS), 1, 1)):
            if int(np.prod(shape)) != count:
                raise EdgeError(f"{self.model_path}: output {name} has shape {shape}, expected {count} values")
        heat_shape = tuple(n for n in shapes[3] if n != 1)
        if len(heat_shape) != 2:
            raise EdgeError(f"{self.model_path}: heatmap output has shape {shapes[3]}, expected (1, h, w)")
        return heat_shape

    # --- the steps, one by one -------------------------------------------------------------

    def prepare(self, scan: np.ndarray) -> Prepared:
        """Decoded scan -> the model's uint8 input square and its geometry (edge.preprocess)."""
        try:
            return prepare(scan, self.input_size)
        except ValueError as exc:
            raise EdgeError(f"cannot prepare the scan ({exc})") from None

    def set_input(self, image: np.ndarray) -> None:
        """Put a prepared uint8 (S, S) image into the input tensor, quantized for the model."""
        if self._input_table is not None:
            image = self._input_table[image]
        self.interpreter.set_tensor(self.input_index, image.reshape(1, self.input_size, self.input_size, 1))

    def invoke(self) -> None:
        """The bare model run on whatever input is set."""
        self.interpreter.invoke()

    def read_outputs(self) -> RawOutputs:
        get = self.interpreter.get_tensor
        return tuple(get(index) for index in self._output_index)

    def run(self, image: np.ndarray) -> RawOutputs:
        """set_input + invoke + read_outputs."""
        self.set_input(image)
        self.invoke()
        return self.read_outputs()

    def evidence(self, raw: RawOutputs, prepared: Prepared) -> Evidence:
        """Dequantize one scan's outputs: what its answer, and its partner's, are made from."""
        real = [q.dequantize(v) for q, v in zip(self._output_quant, raw)]
        if self.heads is not None:
            out = head_outputs(real, self.heads)
            classes, abnormal, malignant, heatmap = out.classes, out.abnormal, out.malignant, out.heatmap
            image = None if out.image is None else float(out.image[0])
        else:
            classes, abnormal, malignant, heatmap = real
            image = None
        heatmap = np.clip(heatmap.reshape(self.heatmap_shape), 0.0, 1.0)
        return Evidence(
            heat=scan_evidence(heatmap, image),
            classes=classes.reshape(-1),
            abnormal=float(abnormal.reshape(-1)[0]),
            malignant_if_abnormal=float(malignant.reshape(-1)[0]),
            heatmap=heatmap,
            geometry=prepared.geometry,
            quality=prepared.quality,
            inverted=prepared.inverted,
        )

    def answer(self, own: Evidence, other: Evidence | None = None) -> Result:
        """The coherent answer (`edge.inference.reading`) for a scan, read beside the other breast when given.

        A model whose manifest has no `reading` stage is read scan by scan: its `abnormal`
        output is P(abnormal), and the partner is not used."""
        if self.reading is None:
            p_abnormal = own.abnormal
        else:
            p_abnormal = self.reading.p_abnormal(own.heat, None if other is None else other.heat)
        answer = reading_answer(p_abnormal, own.classes, own.malignant_if_abnormal, self.manifest.triage_threshold, self.labels,
                                self.heads is not None and self.heads.malignant_direct)
        return Result(
            label=answer.label,
            probabilities=answer.probabilities,
            abnormal=answer.abnormal,
            malignant=answer.malignant,
            triage=answer.triage,
            heatmap=own.heatmap,
            geometry=own.geometry,
            quality=own.quality,
            model=self.sha256,
            inverted=own.inverted,
        )

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> Result:
        """The answer for a scan read alone."""
        return self.answer(self.evidence(raw, prepared))

    def classify(self, scan: np.ndarray) -> Result:
        """A decoded 2-D greyscale scan (any size, any depth) -> its Result."""
        prepared = self.prepare(scan)
        return self.postprocess(self.run(prepared.image), prepared)


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what C++ code writes straight to file descriptor 2 (Python errors still raise)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, pytest capture...)
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _input_table(quant: Quantization, dtype: np.dtype, where: Path) -> np.ndarray | None:
    """A 256-entry table grey level -> input value, or None when the grey level goes in as it is.

    Built once per model, so quantizing a scan is one table look-up. uint8 and int8 inputs are
    int8 models'; int16 is a 16x8 model's (int16 activations, `train.quantizer.ACTIVATIONS`).
    """
    if dtype == np.uint8 and quant in ((1.0, 0), (0.0, 0)):
        return None
    if dtype.name not in INPUT_DTYPES:
        raise EdgeError(f"{where}: model input type {dtype.name} is not {', '.join(INPUT_DTYPES[:-1])} or {INPUT_DTYPES[-1]}")
    info = np.iinfo(dtype)
    if quant.scale == 0.0:
        quant = Quantization(1.0, 0 if dtype == np.uint8 else -128)
    top = (info.max - quant.zero_point) * quant.scale
    if top < 200.0:
        raise EdgeError(
            f"{where}: model input quantization (scale {quant.scale:g}, zero point {quant.zero_point}) "
            "does not cover grey levels 0..255; the model must take prepare()'s image as 0..255"
        )
    grey = np.arange(256, dtype=np.float64)
    return np.clip(np.rint(grey / quant.scale + quant.zero_point), info.min, info.max).astype(dtype)


def model_input(detail: dict, image: np.ndarray, where: Path = Path("model")) -> np.ndarray:
    """A prepared uint8 (S, S) image as the input tensor `detail` (an interpreter's input detail) takes it.

    For loops outside a `Classifier` (training's board features, the converter, research); a
    `Classifier` keeps its table instead of building it per scan."""
    table = _input_table(Quantization.of(detail), np.dtype(detail["dtype"]), where)
    image = np.asarray(image, dtype=np.uint8)
    return (image if table is None else table[image])[None, :, :, None]
