"""`edge-convert` as a library: trained Keras model -> int8 model + manifest + fidelity report + readiness.

Steps, each a function elsewhere in `convert`:
1. read `training.json` beside the model and check the model against the contract;
2. prepare every development scan with `edge.preprocess.prepare` at the model's input size;
3. quantize (`train.quantizer.quantize`) on a calibration set drawn from those scans;
4. find where each output landed in the interpreter (`output_positions`);
5. compare float and int8 on every scan (`convert.fidelity`), both seen through the board's own
   `edge.inference.classifier.Classifier` (`convert.board`), and check the Edge TPU rules (`convert.edgetpu`);
6. write the report, and the model + manifest only when the fidelity check passed, so a bad
   conversion never replaces a good model.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import numpy as np

from edge import LABELS
from edge.inference.classifier import Classifier
from edge.errors import EdgeError
from edge.fileio import sha256_bytes, sha256_file
from edge.inference.heads import Heads
from edge.inference.manifest import OUTPUT_NAMES, Manifest, expected_outputs
from edge.preprocess import prepare
from edge.scan.decode import ColourScanWarning
from convert import board, edgetpu, fidelity, quantize, rewrite
from train import handoff, quantizer

DEFAULT_CALIBRATION = 300
HEADLINE_LIMIT = 6000  # characters of training.json "metrics" copied whole into the manifest

Progress = Callable[[str, int], ContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def no_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda steps=1: None


@dataclass
class ConvertOptions:
    model: Path
    data: list[Path]  # one folder per source, in the order edge-train read them (calibration draws from all)
    out: Path
    report: Path | None = None  # default: `out`
    training_json: Path | None = None  # default: training.json beside the model
    calibration: int = DEFAULT_CALIBRATION
    seed: int = 0
    min_agreement: float = 0.97
    max_auc_drop: float = 0.02
    command: str = ""
    note: str = ""  # why this conversion was run as it was (e.g. a lowered threshold), kept in report and manifest
    activations: str | None = None  # quantizer.ACTIVATIONS; None: training.json's (the features its heads were fitted on)


@dataclass
class ConvertResult:
    fidelity: fidelity.Fidelity
    readiness: edgetpu.Readiness
    content: bytes
    manifest: Manifest | None  # None when the fidelity check failed (nothing written to `out`)
    report_dir: Path
    messages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.fidelity.passed


def load_keras_model(path: Path, expected: tuple[str, ...] = OUTPUT_NAMES) -> Any:
    """The trained model, with its outputs put in the contract's order (`expected`) when they carry its names."""
    import keras

    if not path.is_file():
        raise EdgeError(f"{path}: model file not found")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad or foreign file
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeError(f"{path}: cannot load the Keras model ({line})") from None
    names = [quantize._output_name(t) for t in model.outputs]
    if set(names) == set(expected) and names != list(expected):
        by_name = dict(zip(names, model.outputs))
        model = keras.Model(model.inputs, [by_name[name] for name in expected], name=model.name)
    return model


def check_contract(model: Any, input_size: int, heads: dict[str, Any] | None = None) -> None:
    """The input (1, S, S, 1) with S from training.json, and outputs (1,7), (1,1), (1,1), (1,h,w), or
    with `heads` (training.json) the cell features of each scale, (1, g, g, C), for those heads."""
    if len(model.inputs) != 1:
        raise EdgeError(f"the model has {len(model.inputs)} inputs; the contract is one scan input")
    shape = tuple(model.inputs[0].shape)
    if shape != (1, input_size, input_size, 1):
        hint = " (give keras.Input batch_size=1)" if shape and shape[0] is None else ""
        raise EdgeError(f"the model input is {shape}; the contract is (1, {input_size}, {input_size}, 1){hint}")
    shapes = [tuple(t.shape) for t in model.outputs]
    if heads is not None:
        channels = Heads.from_json(heads, len(LABELS)).channels
        names = expected_outputs(heads)
        if len(shapes) != len(names) or any(len(s) != 4 or s[0] != 1 or s[3] != channels for s in shapes):
            raise EdgeError(f"the model outputs are {shapes}; its heads read {', '.join(names)}, each (1, g, g, {channels})")
        return
    expected = [(1, len(LABELS)), (1, 1), (1, 1)]
    if len(shapes) != 4 or shapes[:3] != expected or len(shapes[3]) != 3 or shapes[3][0] != 1:
        raise EdgeError(
            f"the model outputs are {shapes}; the contract is classes (1, 7), abnormal (1, 1), "
            "malignant (1, 1), heatmap (1, h, w), in that order or named so"
        )


def chosen_activations(options: ConvertOptions, training: handoff.Handoff | None = None) -> str:
    """`options.activations`, else those whose features training fitted the heads on
    (`train.cv.Config.features`): the model is converted the same way, so the board runs what was
    cross-validated. A training.json from before the choice existed had int8 ones."""
    if options.activations:
        return options.activations
    if training is None:
        training = handoff.read(options.training_json or options.model.with_name("training.json"))
    config = training.record.get("config") or {}
    chosen = config.get("features", "int8" if config.get("int8") else "int16")
    return chosen if chosen in quantizer.ACTIVATIONS else "int16"


def _headline(metrics: Any) -> Any:
    if metrics is None:
        return {}
    text = json.dumps(metrics)
    if len(text) <= HEADLINE_LIMIT:
        return metrics
    if isinstance(metrics, dict):  # keep the scalars and the small parts
        return {k: v for k, v in metrics.items() if len(json.dumps(v)) <= HEADLINE_LIMIT // 8}
    return {}


def run(options: ConvertOptions, progress: Progress = no_progress) -> ConvertResult:
    """Convert, compare, check; write the report always and the model only when fidelity passed."""
    from train import records as training_records

    report_dir = options.report or options.out
    training_path = options.training_json or options.model.with_name("training.json")
    if not options.model.is_file():
        raise EdgeError(f"{options.model}: model file not found")
    training = handoff.read(training_path)
    size = training.input_size
    activations = chosen_activations(options, training)
    records = training_records.load_all(options.data)
    if options.calibration < 1:
        raise EdgeError("--calibration must be at least 1")

    scans = []
    with progress("preparing scans", len(records)) as step, warnings.catch_warnings():
        warnings.simplefilter("ignore", ColourScanWarning)  # a source of grey JPEGs stored as RGB (the digital one)
        for record in records:
            scans.append(prepare(record.pixels(), size=size))
            step(1)
    images = np.stack([prepared.image for prepared in scans])

    names = expected_outputs(training.heads)
    model = load_keras_model(options.model, names)
    check_contract(model, size, training.heads)
    # An exact float rewrite of concatenation-reading heads that quantizes better (convert/rewrite.py);
    # used only when it gives the same float answers on real scans. Fidelity is measured against `model`.
    quantizable, rewrites = rewrite.split_concatenated_heads(model)
    if rewrites and rewrite.max_float_difference(model, quantizable, images[:8]) > 1e-4:
        quantizable, rewrites = model, []
    calibration = quantizer.representative_images(images, options.calibration, options.seed)
    with progress(f"quantizing ({activations} activations)", 1) as step:
        content = quantizer.quantize(quantizable, calibration, activations)
        if training.heads is not None:  # inside the file too: its sha256 names the heads the board runs
            content = quantize.embed_heads(content, training.heads)
        step(1)
    positions = quantize.output_positions(quantizable, content, images[:8], names)
    manifest = quantize.build_manifest(content, outputs=positions, triage_threshold=training.triage.threshold,
                                       target_sensitivity=training.triage.target_sensitivity, labels=LABELS,
                                       reading=training.reading, heads=training.heads)

    # The gate judges what a board prints: the int8 model in the board's Classifier with TFLite's
    # builtin int8 kernels (what the heads were fitted on, what the desktop and Coral configs ask
    # for), the float model's outputs through the same postprocess (convert/board.py).
    classifier = Classifier.from_bytes(content, manifest, kernels="builtin")
    with progress("float vs quantized, every scan", len(records)) as step:
        result = fidelity.compare(
            [r.id for r in records],
            [int(r.abnormal) for r in records],
            scans,
            lambda prepared: board.float_result(classifier, model, prepared),
            lambda prepared: board.int8_result(classifier, prepared),
            options.min_agreement,
            options.max_auc_drop,
            progress=step,
        )
    # The same int8 model under LiteRT's default XNNPACK kernels, which round otherwise and which a
    # board gets if it runs the file without its device config: it must be faithful there too.
    xnnpack = Classifier.from_bytes(content, manifest, kernels="default")
    xnnpack_outputs = []
    with progress("quantized, XNNPACK kernels", len(records)) as step:
        for prepared in scans:
            xnnpack_outputs.append(board.int8_result(xnnpack, prepared))
            step(1)
    xnnpack_result = fidelity.Fidelity(result.ids, result.abnormal_truth, result.float_outputs, xnnpack_outputs,
                                       options.min_agreement, options.max_auc_drop)
    kernels = fidelity.compare_kernels(xnnpack_outputs, result.int8_outputs, manifest.triage_threshold)
    kernels["xnnpack_vs_float"] = {key: xnnpack_result.to_dict()[key] for key in (
        "top1_agreement", "abnormal_abs_diff_max", "abnormal_abs_diff_mean", "auc_int8", "auc_drop", "passed",
        "failures")}
    if not xnnpack_result.passed:
        result.extra_failures.extend(f"under LiteRT's XNNPACK kernels: {failure}" for failure in xnnpack_result.failures)
    readiness = edgetpu.check_readiness(content)

    versions = quantize.versions()
    real = min(options.calibration, len(images))
    calibration_text = (
        f"{options.calibration} images: {real} development scans"
        + (f" + {options.calibration - real} mildly augmented copies" if options.calibration > real else "")
        + f" (seed {options.seed})"
    )
    context = {
        "model": options.model.name,
        "source_sha256": sha256_file(options.model),
        "model_file": quantize.MODEL_FILE,
        "sha256": sha256_bytes(content),
        "size_bytes": len(content),
        "input_size": size,
        "calibration": calibration_text,
        "activations": activations,
        "converter": versions.get("converter", "?"),
        "runtime": versions.get("runtime", "?"),
        "command": options.command,
        "note": options.note,
        "outputs": positions,
        "kernels": kernels,
        "graph_rewrites": rewrites,
        "min_runtime_version": readiness.min_runtime_version,
    }
    fidelity.write_report(report_dir, result, context, readiness.to_dict(), readiness.summary())

    if result.passed:
        info = {
            "disclaimer": fidelity.DISCLAIMER,
            "source": {
                "keras_file": options.model.name,
                "sha256": context["source_sha256"],
                "training_json_sha256": sha256_file(training_path),
            },
            "data": training.data,
            "metrics": _headline(training.metrics),
            "triage": {"chosen_on": training.triage.chosen_on},
            "model": training.record.get("model", ""),
            "calibration": {"images": options.calibration, "real_scans": real, "seed": options.seed,
                            "source": "development split, edge.preprocess.prepare"},
            "fidelity": {key: result.figures[key] for key in (
                "scans", "top1_agreement", "abnormal_abs_diff_max", "abnormal_abs_diff_mean",
                "auc_float", "auc_int8", "auc_drop")},
            "kernels": {"xnnpack_vs_builtin": kernels},
            "edgetpu_readiness": {key: readiness.to_dict()[key] for key in (
                "ready", "problems", "cpu_ops", "parameter_bytes", "min_runtime_version", "op_versions")},
            "graph_rewrites": rewrites,
            "command": options.command,
            **({"note": options.note} if options.note else {}),
        }
        manifest = replace(manifest, info={**info, **manifest.info})
        quantize.write_model_folder(options.out, content, manifest)
    else:
        manifest = None
    messages = _remove_stale_edgetpu(options.out, manifest) if manifest else []
    return ConvertResult(result, readiness, content, manifest, Path(report_dir), messages)


def _remove_stale_edgetpu(out: Path, manifest: Manifest) -> list[str]:
    """A model_edgetpu.* compiled from an earlier model.tflite would silently run old weights: remove it."""
    compiled_manifest = out / "model_edgetpu.json"
    if not compiled_manifest.is_file():
        return []
    try:
        source = json.loads(compiled_manifest.read_text()).get("info", {}).get("edgetpu", {}).get("compiled_from")
    except (OSError, ValueError):
        source = None
    if source == manifest.sha256:
        return []
    for name in ("model_edgetpu.tflite", "model_edgetpu.json", "model_edgetpu.log"):
        (out / name).unlink(missing_ok=True)
    return [f"removed {out / 'model_edgetpu.tflite'}: it was compiled from an earlier model (run with --edgetpu)"]


def compile_edgetpu(out: Path, manifest: Manifest) -> tuple[Path, Manifest]:
    """Compile out/model.tflite with edgetpu_compiler and write model_edgetpu.json beside it."""
    from edge.inference.manifest import manifest_path_for, save_manifest

    model_path = out / manifest.model_file
    compiled, log = edgetpu.compile_for_edgetpu(model_path, out)
    original, content = model_path.read_bytes(), compiled.read_bytes()
    if not edgetpu.output_order_preserved(original, content):
        raise EdgeError(f"{compiled}: the compiler changed the order of the outputs; its manifest would be wrong")
    version = next((line for line in log.splitlines() if "version" in line.lower()), "").strip()
    info = {**manifest.info, "edgetpu": {"compiled_from": manifest.sha256, "compiler": version,
                                         "log": compiled.with_suffix(".log").name}}
    compiled_manifest = replace(manifest, model_file=compiled.name, sha256=sha256_bytes(content), info=info)
    save_manifest(compiled_manifest, manifest_path_for(compiled))
    return compiled, compiled_manifest


def command_line() -> str:
    return "edge-convert " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
