"""Edge TPU readiness, checked offline from the .tflite flatbuffer, and the real compiler when present.

`edgetpu_compiler` exists only in Coral's apt repository (x86-64 Debian/Ubuntu). What it would
refuse can mostly be seen without it, by reading the model file:
- every op a builtin (no custom or Flex op) on Coral's list of supported operations;
- every tensor the ops compute on int8/uint8 (a float op runs on the CPU);
- every shape static (no -1 in a shape signature: a dynamic batch is refused) and with at most
  3 dimensions larger than 1;
- parameters (constant buffers) under 8 MB, the Edge TPU's on-chip memory (more works, but
  streams weights from the host on every invoke);
- uint8 (or int8) model input and outputs.
The compiler maps ops in execution order and hands the first op it cannot map, and in
practice everything after it, to the CPU; `Readiness.cpu_ops` lists those.

Nothing here needs TensorFlow: the schema comes with the LiteRT runtime.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeError

PARAMETER_LIMIT = 8 * 1024 * 1024

# Coral, "TensorFlow models on the Edge TPU", section "Supported operations" (coral.ai/docs/edgetpu/models-intro),
# in TFLite builtin names. Limitations listed there are noted in `OP_NOTES`; they are not all checkable here.
EDGETPU_OPS = frozenset(
    """
    ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED
    L2_NORMALIZATION LOGISTIC LSTM UNIDIRECTIONAL_SEQUENCE_LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL
    PACK PAD PRELU QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUEEZE STRIDED_SLICE SUB SUM
    SQUARED_DIFFERENCE TANH TRANSPOSE TRANSPOSE_CONV
    """.split()
)
OP_NOTES = {
    "AVERAGE_POOL_2D": "no fused activation",
    "MAX_POOL_2D": "no fused activation",
    "CONCATENATION": "no fused activation",
    "FULLY_CONNECTED": "default weight format only; one-dimensional output",
    "MEAN": "reduction along x and/or y only",
    "PAD": "padding along x and/or y only",
    "RESIZE_BILINEAR": "3-D input/output; may stay on the CPU to keep precision",
    "SOFTMAX": "1-D input only",
}
QUANTIZED = {"INT8", "UINT8"}
ALLOWED_CONSTANT = {"INT8", "UINT8", "INT32"}  # weights, biases, shapes and axes


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    version: int
    tensor_types: tuple[str, ...]


@dataclass
class Readiness:
    """What an Edge TPU compile of a model would meet: problems (empty when ready) and the ops on the CPU."""

    ops: list[OpInfo]
    problems: list[str] = field(default_factory=list)
    cpu_ops: list[str] = field(default_factory=list)
    parameter_bytes: int = 0
    input_types: tuple[str, ...] = ()
    output_types: tuple[str, ...] = ()
    min_runtime_version: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems

    def op_versions(self) -> dict[str, int]:
        versions: dict[str, int] = {}
        for op in self.ops:
            versions[op.name] = max(op.version, versions.get(op.name, 0))
        return dict(sorted(versions.items()))

    def to_dict(self) -> dict:
        return {
            "ready": self.ready,
            "problems": self.problems,
            "cpu_ops": self.cpu_ops,
            "parameter_bytes": self.parameter_bytes,
            "ops": len(self.ops),
            "op_versions": self.op_versions(),
            "input_types": list(self.input_types),
            "output_types": list(self.output_types),
            "min_runtime_version": self.min_runtime_version,
            "notes": self.notes,
        }

    def summary(self) -> str:
        """A few readable lines for the terminal and the report."""
        head = "Edge TPU readiness: " + (
            "ready (every op an int8 builtin on Coral's list, static shapes, uint8 I/O)"
            if self.ready
            else f"NOT ready ({len(self.problems)} problem(s))"
        )
        lines = [head, f"  {len(self.ops)} ops, parameters {self.parameter_bytes / 1e6:.2f} MB (limit 8.39 MB)"]
        lines += [f"  problem: {problem}" for problem in self.problems]
        if self.cpu_ops:
            lines.append(f"  would run on the CPU: {', '.join(self.cpu_ops)}")
        else:
            lines.append("  would run on the CPU: nothing")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            raise EdgeError("cannot read .tflite files: install ai-edge-litert (it ships the schema)") from None
    return schema


def _names(enum_class) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_") and isinstance(value, int)}


def parse_model(content: bytes):
    """The flatbuffer as the schema's object tree (ModelT)."""
    schema = _schema()
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise EdgeError("not a TFLite model (no TFL3 identifier)")
    try:
        return schema.ModelT.InitFromPackedBuf(content, 0)
    except Exception as exc:  # a damaged flatbuffer raises whatever the reader tripped on
        raise EdgeError(f"the .tflite file cannot be parsed ({type(exc).__name__})") from None


def check_readiness(content: bytes) -> Readiness:
    """Check a .tflite model against what the Edge TPU compiler accepts, without the compiler."""
    schema = _schema()
    model = parse_model(content)
    op_names = _names(schema.BuiltinOperator)
    type_names = _names(schema.TensorType)
    if len(model.subgraphs or []) != 1:
        raise EdgeError(f"the model has {len(model.subgraphs or [])} subgraphs; expected 1")
    graph = model.subgraphs[0]
    tensors = graph.tensors or []
    buffers = model.buffers or []

    def is_constant(t) -> bool:
        return 0 < t.buffer < len(buffers) and buffers[t.buffer].data is not None and len(buffers[t.buffer].data) > 0

    def tname(t) -> str:
        return t.name.decode() if isinstance(t.name, bytes) else str(t.name)

    readiness = Readiness(ops=[])
    problems = readiness.problems
    unsupported_at: int | None = None
    for position, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM:{custom}"
        used = [tensors[i] for i in list(op.inputs if op.inputs is not None else []) + list(op.outputs if op.outputs is not None else []) if i >= 0]
        types = tuple(type_names.get(t.type, str(t.type)) for t in used)
        readiness.ops.append(OpInfo(position, name, int(code.version), types))

        why = []
        if name.startswith("CUSTOM:") or name not in EDGETPU_OPS:
            why.append("not on the Edge TPU's list of supported ops")
        floats = sorted(
            {type_names.get(t.type, str(t.type)) for t in used if not is_constant(t) and type_names.get(t.type) not in QUANTIZED}
            | {type_names.get(t.type, str(t.type)) for t in used if is_constant(t) and type_names.get(t.type) not in ALLOWED_CONSTANT}
        )
        if floats:
            why.append(f"computes on {'/'.join(floats)}, not int8")
        if why:
            problems.append(f"op {position} {name}: " + "; ".join(why))
            if unsupported_at is None:
                unsupported_at = position
    if unsupported_at is not None:
        readiness.cpu_ops = [f"{op.index}:{op.name}" for op in readiness.ops[unsupported_at:]]

    dynamic, too_many_dims = [], []
    for t in tensors:
        signature = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else None
        shape = [int(d) for d in t.shape] if t.shape is not None else []
        if signature is not None and any(d < 0 for d in signature):
            dynamic.append(f"{tname(t)!r} {signature}")
        # "Only the 3 innermost dimensions may have a size greater than 1" (activations; weights are exempt).
        if not is_constant(t) and any(d > 1 for d in shape[:-3]):
            too_many_dims.append(f"{tname(t)!r} {shape}")
    if dynamic:
        problems.append(f"{len(dynamic)} tensor(s) have a dynamic shape (a dynamic batch or size), e.g. {dynamic[0]}")
    if too_many_dims:
        problems.append(
            f"{len(too_many_dims)} tensor(s) have a dimension > 1 outside the 3 innermost, e.g. {too_many_dims[0]}"
        )

    readiness.parameter_bytes = sum(len(buffers[t.buffer].data) for t in tensors if is_constant(t))
    if readiness.parameter_bytes > PARAMETER_LIMIT:
        problems.append(
            f"parameters take {readiness.parameter_bytes / 1e6:.1f} MB, over the Edge TPU's 8 MB on-chip memory "
            "(they would stream from the host on every invoke)"
        )
    readiness.input_types = tuple(type_names.get(tensors[i].type, "?") for i in graph.inputs)
    readiness.output_types = tuple(type_names.get(tensors[i].type, "?") for i in graph.outputs)
    for kind, found in (("input", readiness.input_types), ("output", readiness.output_types)):
        wrong = [dtype for dtype in found if dtype not in QUANTIZED]
        if wrong:
            problems.append(f"model {kind}s are {', '.join(found)}, not uint8")
    for tensor_index in graph.inputs:
        shape = [int(d) for d in tensors[tensor_index].shape]
        if shape and shape[0] != 1:
            problems.append(f"model input has batch {shape[0]}, not 1")
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == "min_runtime_version" and 0 < entry.buffer < len(buffers) and buffers[entry.buffer].data is not None:
            raw = bytes(np.asarray(buffers[entry.buffer].data, dtype=np.uint8))
            readiness.min_runtime_version = raw.split(b"\0")[0].decode(errors="replace") or None
    noted = sorted({op.name for op in readiness.ops if op.name in OP_NOTES})
    readiness.notes = [f"{name}: {OP_NOTES[name]} (check the compiler's log)" for name in noted]
    return readiness


# --- the compiler ----------------------------------------------------------------------------

COMPILER = "edgetpu_compiler"

INSTALL_INSTRUCTIONS = """\
edgetpu_compiler is not on PATH. It exists only in Coral's apt repository, for x86-64 Debian/Ubuntu.
On such a machine (not on the Pi), as root or with sudo:
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor -o /usr/share/keyrings/coral-edgetpu.gpg
  echo "deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" > /etc/apt/sources.list.d/coral-edgetpu.list
  apt-get update && apt-get install edgetpu-compiler
then either run this command again with --edgetpu, or compile the int8 model it wrote by hand:
  edgetpu_compiler --show_operations --out_dir {out_dir} {model}
which writes {out_dir}/model_edgetpu.tflite and model_edgetpu.log (the log lists every op and where it runs).
Nothing was compiled here."""


def compile_for_edgetpu(model_path: str | Path, out_dir: str | Path, timeout: float = 600) -> tuple[Path, str]:
    """Run edgetpu_compiler on `model_path`; (compiled model path, compiler log). EdgeError when it is absent or fails."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    compiler = shutil.which(COMPILER)
    if compiler is None:
        raise EdgeError(INSTALL_INSTRUCTIONS.format(out_dir=out_dir, model=model_path))
    try:
        done = subprocess.run(
            [compiler, "--show_operations", "--out_dir", str(out_dir), str(model_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EdgeError(f"{COMPILER} could not run ({exc})") from None
    compiled = out_dir / f"{model_path.stem}_edgetpu.tflite"
    log = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0 or not compiled.is_file():
        last = log.strip().splitlines()[-1] if log.strip() else f"exit status {done.returncode}"
        raise EdgeError(f"{COMPILER} failed: {last}")
    return compiled, log


def output_order_preserved(original: bytes, compiled: bytes) -> bool:
    """Whether the compiled model lists its outputs in the original's order (same names and shapes)."""

    def outputs(content: bytes) -> list[tuple[str, tuple[int, ...]]]:
        graph = parse_model(content).subgraphs[0]
        found = []
        for i in graph.outputs:
            t = graph.tensors[i]
            found.append((t.name.decode() if isinstance(t.name, bytes) else str(t.name), tuple(int(d) for d in t.shape)))
        return found

    return outputs(original) == outputs(compiled)
