"""Full-integer post-training quantization of the trained Keras model, and the model folder it fills.

The model contract (from training): one input `(1, S, S, 1)` float32 holding the uint8 pixels of
`edge.preprocess.prepare(scan, size=S).image` (the rescaling is inside the model), and four
outputs in the order `classes` (1, 7), `abnormal` (1, 1), `malignant` (1, 1), `heatmap` (1, h, w).

The converter keeps the input's real range 0..255, so an int8 model's uint8 input tensor comes out
with scale 1 and zero point 0: the board feeds the prepared pixels as they are (a 16x8 model's
int16 input takes them through a 256-entry table, `edge.inference.classifier.model_input`). TFLite is free to
reorder the outputs, and `abnormal` and `malignant` have the same shape, so `output_positions`
finds each output's place from the signature and then checks it by running both models.

TensorFlow is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edge import LABELS
from edge.inference.classifier import Quantization, model_input
from edge.errors import EdgeError
from edge.fileio import atomic_write_bytes, sha256_bytes
from edge.inference.heads import METADATA, canonical
from edge.inference.manifest import OUTPUT_NAMES, Manifest, expected_outputs, manifest_path_for, save_manifest
from edge.preprocess import prepare
from edge.runtime import make_interpreter
from train.quantizer import as_model_input

MODEL_FILE = "model.tflite"


def prepared_images(records: Iterable[Any], size: int) -> np.ndarray:
    """`prepare(scan, size).image` of every record (anything with `.pixels()`), as (N, S, S) uint8."""
    return np.stack([prepare(record.pixels(), size=size).image for record in records])


def float_tflite(model: Any) -> bytes:
    """A Keras `model` as float32 TFLite: the same graph, nothing quantized."""
    import tensorflow as tf

    with contextlib.redirect_stdout(sys.stderr):  # Keras prints the traced signature
        return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


# --- which int8 output is which -------------------------------------------------------------------


def interpreter_outputs(interpreter: Any, image: np.ndarray) -> list[np.ndarray]:
    """Every output of one prepared uint8 image, dequantized, in get_output_details() order.

    Only for finding which output is which, before a manifest exists; everything after that
    runs the board's `edge.inference.classifier.Classifier` (convert/board.py)."""
    (detail,) = interpreter.get_input_details()
    interpreter.set_tensor(detail["index"], model_input(detail, image))
    interpreter.invoke()
    return [Quantization.of(d).dequantize(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]


def embed_heads(content: bytes, heads: dict[str, Any]) -> bytes:
    """The int8 model with `heads` inside as TFLite metadata (`edge.inference.heads.canonical`): its sha256 then
    covers the heads the board runs beside it, and the board refuses a manifest whose heads differ."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if any(entry.name in (METADATA, METADATA.encode()) for entry in model.metadata or []):
        raise EdgeError("the model already holds heads")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(canonical(heads), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def run_keras(model: Any, image: np.ndarray) -> list[np.ndarray]:
    """Float outputs of one prepared uint8 image, in the Keras model's output order."""
    outputs = model(as_model_input(image), training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(o.numpy() if hasattr(o, "numpy") else o, dtype=np.float32) for o in outputs]


def output_positions(model: Any, content: bytes, images: Sequence[np.ndarray], names: Sequence[str] = OUTPUT_NAMES) -> dict[str, int]:
    """Each contract output's position (`names`, in the Keras model's output order) in the int8
    interpreter's get_output_details().

    The signature runner names the outputs `output_k` (k = place among the Keras outputs) or
    by the Keras output names; each name leads to a tensor index and so to a position. The
    answer is then checked by running a few `images` through both models: for every pair of
    outputs of the same shape, the chosen assignment must fit the float model better than the
    swapped one. A mismatch is an error, never a guess.
    """
    interpreter = make_interpreter(content, kernels="default")
    details = interpreter.get_output_details()
    position_of_index = {d["index"]: position for position, d in enumerate(details)}
    keras_names = [_output_name(t) for t in model.outputs]
    if len(keras_names) != len(names):
        raise EdgeError(f"the model has {len(keras_names)} outputs; the contract is {', '.join(names)}")

    positions = _positions_from_signature(interpreter, keras_names, position_of_index, names)
    float_out = [run_keras(model, image) for image in images]
    int8_out = [interpreter_outputs(interpreter, image) for image in images]

    def error(keras_k: int, position: int) -> float:
        pairs = [(f[keras_k], q[position]) for f, q in zip(float_out, int8_out)]
        if any(np.shape(a) != np.shape(b) for a, b in pairs):
            return float("inf")
        return float(np.mean([np.mean(np.abs(a - b)) for a, b in pairs]))

    if positions is None:  # no usable signature: assign by fit alone
        positions = {}
        free = set(range(len(details)))
        for k in range(len(names)):
            best = min(free, key=lambda p: error(k, p))
            positions[names[k]] = best
            free.discard(best)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            pa, pb = positions[names[a]], positions[names[b]]
            if error(a, pa) + error(b, pb) > error(a, pb) + error(b, pa) + 1e-6:
                raise EdgeError(
                    f"cannot tell outputs {names[a]} and {names[b]} apart: the int8 model's "
                    "signature and its answers disagree"
                )
    for k, name in enumerate(names):
        if not np.isfinite(error(k, positions[name])):
            raise EdgeError(f"output {name}: the int8 model's output has another shape than the float model's")
    return positions


def _output_name(tensor: Any) -> str:
    name = getattr(tensor, "name", "") or ""
    history = getattr(tensor, "_keras_history", None)
    if history is not None:
        name = history[0].name
    return name.split("/")[0].split(":")[0]


def _positions_from_signature(interpreter: Any, keras_names: list[str], position_of_index: dict, names: Sequence[str]) -> dict | None:
    try:
        runner_outputs = interpreter.get_signature_runner().get_output_details()
    except (ValueError, RuntimeError):
        return None
    positions: dict[str, int] = {}
    for k, name in enumerate(names):
        for key in (name, keras_names[k], f"output_{k}"):
            if key in runner_outputs:
                positions[name] = position_of_index[runner_outputs[key]["index"]]
                break
        else:
            return None
    return positions if len(set(positions.values())) == len(names) else None


# --- the model folder -------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """What the int8 interpreter says about a model: input dtype/size and every tensor's quantization."""

    input_size: int
    input_dtype: str
    quantization: dict[str, Any]


def model_facts(content: bytes, positions: dict[str, int]) -> ModelFacts:
    """Read from the model itself; int16 input means int16 activations (`quantize`'s 16x8 mode)."""
    interpreter = make_interpreter(content)
    (input_detail,) = interpreter.get_input_details()
    shape = [int(v) for v in input_detail["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 1:
        raise EdgeError(f"the model input has shape {shape}; the contract is (1, S, S, 1)")
    details = interpreter.get_output_details()

    def quant(detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        return {
            "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(v) for v in detail["shape"]],
            "scale": float(scale),
            "zero_point": int(zero_point),
        }

    quantization = {
        "input": quant(input_detail),
        "outputs": {name: quant(details[position]) for name, position in positions.items()},
        "weights": "int8, per-channel for convolutions (TFLite default)",
        "activations": ("int16" if input_detail["dtype"] == np.int16 else "int8")
        + ", per-tensor, calibrated on the representative dataset",
    }
    return ModelFacts(shape[1], np.dtype(input_detail["dtype"]).name, quantization)


def versions() -> dict[str, str]:
    """Converter and runtime versions, for the manifest."""
    from edge.runtime import runtime_version

    found = {}
    for key, distribution in (("converter", "tensorflow-cpu"), ("converter", "tensorflow"), ("keras", "keras")):
        if key in found:
            continue
        try:
            found[key] = f"{distribution} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            pass
    found["runtime"] = runtime_version("auto")
    return found


def build_manifest(
    content: bytes,
    *,
    outputs: dict[str, int],
    triage_threshold: float,
    target_sensitivity: float,
    labels: Sequence[str] = LABELS,
    info: dict[str, Any] | None = None,
    model_file: str = MODEL_FILE,
    reading: dict[str, Any] | None = None,
    heads: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of the int8 model `content`, whose outputs sit at `outputs`.

    Input size, dtype and every quantization parameter are read from the model itself, and the
    converter and runtime versions from the installed packages, so the manifest cannot drift
    from the file it describes.
    """
    names = expected_outputs(heads)
    if set(outputs) != set(names) or len(set(outputs.values())) != len(names):
        raise EdgeError(f"outputs must map each of {', '.join(names)} to its own position, got {outputs}")
    facts = model_facts(content, outputs)
    return Manifest(
        model_file=model_file,
        sha256=sha256_bytes(content),
        labels=tuple(labels),
        input_size=facts.input_size,
        input_dtype=facts.input_dtype,
        outputs={name: int(outputs[name]) for name in names},
        triage_threshold=float(triage_threshold),
        target_sensitivity=float(target_sensitivity),
        reading=reading,
        heads=heads,
        info={
            **(info or {}),
            "quantization": facts.quantization,
            "preprocessing": {
                "function": "edge.preprocess.prepare",
                "size": facts.input_size,
                "input": "prepare(scan, size).image as uint8 pixels, shape (1, size, size, 1)",
            },
            "versions": versions(),
        },
    )


def write_model_folder(folder: str | Path, content: bytes, manifest: Manifest) -> None:
    """Write the model and its manifest (model.tflite -> model.json) into `folder`.

    The model is written first and the manifest last (both atomically): a reader never finds a
    manifest whose model is not there yet.
    """
    if sha256_bytes(content) != manifest.sha256:
        raise EdgeError("the manifest does not describe this model (sha256 differs)")
    model_path = Path(folder) / manifest.model_file
    atomic_write_bytes(model_path, content)
    save_manifest(manifest, manifest_path_for(model_path))
    readable(model_path, manifest_path_for(model_path))


def readable(*paths: Path) -> None:
    """Atomic writes leave temp-file permissions (0600); model files are meant to be copied and shared."""
    umask = os.umask(0)
    os.umask(umask)
    for path in paths:
        os.chmod(path, 0o644 & ~umask)
