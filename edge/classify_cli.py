"""`edge-classify`: the command a health worker runs. A thin layer over `edge.batch`.

Exit status: 0 every scan classified; 1 at least one scan failed (the others were done);
2 usage or set-up error (bad option, missing or mismatched model, unknown device, no camera).
Only what the options ask for is imported: no overlay drawing, SQLite or camera code
otherwise, so the process starts fast on a Pi.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from edge.cli_common import EXIT_OK, EXIT_SOME_FAILED, friendly_errors, make_app
from edge.errors import EdgeError

classify_app = make_app(
    "Classify mammogram scans offline: MIAS class, P(abnormal), P(malignant), triage (refer / routine). "
    "Research software, not a medical device."
)


@classify_app.command()
def classify(
    paths: Optional[List[Path]] = typer.Argument(None, help="Scan files or folders (every scan inside, sorted).", show_default=False),
    model: Optional[Path] = typer.Option(None, "--model", help="Model .tflite (its manifest .json beside it). Default: the packaged model."),
    device: Optional[str] = typer.Option(None, "--device", help="Board settings: rpi4, rpi5, coral-usb, coral-devboard, x86."),
    config: Optional[Path] = typer.Option(None, "--config", help="Board settings from this TOML file instead of --device."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per scan per line on stdout."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write a heat-map PNG per scan into this folder."),
    log: Optional[Path] = typer.Option(None, "--log", help="Append every result to this SQLite results log; skip scans it already holds."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=64, help="Interpreter threads (default: the board's)."),
    camera: bool = typer.Option(False, "--camera", help="Capture one frame with the Raspberry Pi camera and classify it."),
    force: bool = typer.Option(False, "--force", help="With --log: classify again scans already in the log."),
    log_patient_id: bool = typer.Option(False, "--log-patient-id", help="With --log: store the DICOM PatientID (never stored otherwise)."),
) -> None:
    """Classify scans (PGM, PNG, TIFF, JPEG, DICOM) or a camera frame."""
    status = run(
        paths or [], model=model, device=device, config=config, as_json=as_json, overlay=overlay, log=log,
        threads=threads, camera=camera, force=force, log_patient_id=log_patient_id,
    )
    raise typer.Exit(status)


@friendly_errors
def run(
    paths: list[Path],
    *,
    model: Path | None = None,
    device: str | None = None,
    config: Path | None = None,
    as_json: bool = False,
    overlay: Path | None = None,
    log: Path | None = None,
    threads: int | None = None,
    camera: bool = False,
    force: bool = False,
    log_patient_id: bool = False,
    out=None,
    err=None,
) -> int:
    """The whole command as a function (tests call it directly); returns the exit status."""
    from edge.batch import Options, Source, camera_source, run_batch, summary
    from edge.inputs import expand

    if not paths and not camera:
        raise EdgeError("give at least one scan file or folder, or --camera (see --help)")
    if device and config:
        raise EdgeError("give --device NAME or --config FILE, not both")
    if (force or log_patient_id) and log is None:
        raise EdgeError(f"{'--force' if force else '--log-patient-id'} only makes sense with --log FILE")
    board = _board(device, config)
    classifier = _classifier(board, model, threads)
    if overlay is not None:
        _check_folder(overlay)
    options = Options(as_json=as_json, overlay_dir=overlay, force=force, log_patient_id=log_patient_id,
                      out=out or sys.stdout, err=err or sys.stderr)
    sources = []
    if camera:
        from edge.camera import capture_grey

        sources.append(camera_source(capture_grey))  # an absent camera is a set-up error: exit 2
    sources_iter = _chain(sources, (Source.from_item(item) for item in expand(paths)))
    if log is not None:
        from edge.results_log import ResultsLog

        with ResultsLog(log) as results_log:
            options.log = results_log
            tally = run_batch(classifier, sources_iter, options)
    else:
        tally = run_batch(classifier, sources_iter, options)
    if not as_json:
        print(summary(tally, classifier), file=options.out, flush=True)
    return EXIT_SOME_FAILED if tally.failed else EXIT_OK


def _chain(first, rest):
    yield from first
    yield from rest


def _board(device: str | None, config: Path | None):
    from edge.device import default_config, load_config_file, load_device

    if device:
        return load_device(device)
    if config:
        return load_config_file(config)
    return default_config()


def _classifier(board, model: Path | None, threads: int | None):
    from edge.classifier import Classifier, default_model_path

    if model is None:
        model = default_model_path(board.model)
        if not model.is_file():
            hint = (
                "compile model.tflite with edgetpu_compiler and put the result beside it (see edge-convert)"
                if "edgetpu" in board.model
                else "reinstall mias-edge, or give a model with --model FILE"
            )
            raise EdgeError(f"{model}: no packaged model {board.model} for device '{board.name}'; {hint}")
    return Classifier.for_board(board, model, threads=threads)


def _check_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeError(f"{folder}: cannot create the overlay folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise EdgeError(f"{folder}: not a folder")


def main() -> None:
    classify_app()


if __name__ == "__main__":
    main()
