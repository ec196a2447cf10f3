"""`edge-convert`: quantize a trained Keras model to an integer TFLite model (int8 weights; int16 or int8 activations) and its manifest.

Also writes the fidelity report (float vs quantized on every development scan) and checks Edge TPU
readiness offline; with --edgetpu it runs Coral's compiler when it is installed.

Exit status: 0 done; 1 the quantized model is not faithful enough (report written, model not);
2 set-up error (missing model, data or training.json; no edgetpu_compiler with --edgetpu).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from edge.cli.common import EXIT_SETUP, EXIT_SOME_FAILED
from train.desktop_cli import fail, friendly_errors, make_app

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

app = make_app(__doc__)


@contextlib.contextmanager
def _bar(label: str, total: int):
    with typer.progressbar(length=total, label=f"{label:<30}", file=sys.stderr) as bar:
        yield bar.update


@app.command()
@friendly_errors
def convert(
    model: Path = typer.Argument(..., help="Trained Keras model (models/final.keras); training.json must lie beside it."),
    data: list[Path] = typer.Option(..., "--data", help="The scans: the mini-MIAS folder (Info.txt and the scans) or a folder with a labels.csv; once per source, in edge-train's order."),
    out: Path = typer.Option(..., "--out", help="Folder for model.tflite + model.json (e.g. edge/models)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for the fidelity report (default: the --out folder)."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="Also compile for the Coral Edge TPU (needs edgetpu_compiler)."),
    min_agreement: float = typer.Option(0.97, "--min-agreement", help="Least top-1 agreement float vs quantized."),
    max_auc_drop: float = typer.Option(0.02, "--max-auc-drop", help="Largest allowed drop of the normal-vs-abnormal AUC."),
    calibration: int = typer.Option(300, "--calibration", help="Calibration images (real scans first, then augmented copies)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration draw."),
    note: str = typer.Option("", "--note", help="A sentence kept in the report and the manifest (why a threshold was changed...)."),
    training_json: Optional[Path] = typer.Option(None, "--training-json", help="training.json to use (default: the one beside MODEL)."),
    activations: Optional[str] = typer.Option(None, "--activations", metavar="int16|int8", help="Activation type (weights are int8 either way): int16 runs on a CPU as the float network does; int8 is what --edgetpu needs. Default: the one training.json's heads were fitted on."),
) -> None:
    """Quantize MODEL (int8 weights; int16 or int8 activations), compare it with the float model on every scan, check Edge TPU readiness."""
    from convert import pipeline
    from train.quantizer import ACTIVATIONS

    if not 0.0 <= min_agreement <= 1.0 or max_auc_drop < 0:
        raise fail("--min-agreement must be in 0..1 and --max-auc-drop at least 0")
    if activations is not None and activations not in ACTIVATIONS:
        raise fail(f"--activations must be {' or '.join(ACTIVATIONS)}, got {activations}")
    options = pipeline.ConvertOptions(
        model=model, data=data, out=out, report=report, training_json=training_json, calibration=calibration,
        seed=seed, min_agreement=min_agreement, max_auc_drop=max_auc_drop, command=pipeline.command_line(), note=note,
        activations=activations,
    )
    if edgetpu and pipeline.chosen_activations(options) != "int8":
        raise fail("--edgetpu needs an int8 model (the Edge TPU has no int16 activations): add --activations int8, "
                   "ideally for heads trained with edge-train --activations int8", EXIT_SETUP)
    result = pipeline.run(options, progress=_bar)
    figures = result.fidelity.figures
    print(
        f"fidelity: top-1 agreement {figures['top1_agreement']:.3f}, |dP(abnormal)| max {figures['abnormal_abs_diff_max']:.4f} "
        f"mean {figures['abnormal_abs_diff_mean']:.4f}, AUC float {figures['auc_float']:.3f} quantized {figures['auc_int8']:.3f}"
    )
    print(result.readiness.summary())
    print(f"report: {result.report_dir / 'fidelity.md'}")
    if not result.passed:
        raise fail(
            "quantized model not faithful enough: " + "; ".join(result.fidelity.failures)
            + f". Nothing written to {out}; see {result.report_dir / 'fidelity.md'}",
            EXIT_SOME_FAILED,
        )
    for message in result.messages:
        print(message)
    print(f"wrote {out / result.manifest.model_file} ({len(result.content) / 1024:.0f} KiB) and its manifest")
    if edgetpu:
        compiled, _ = pipeline.compile_edgetpu(out, result.manifest)  # EdgeError -> exit 2 with instructions
        print(f"wrote {compiled} and its manifest (compiled by edgetpu_compiler)")


def main() -> None:
    app()
