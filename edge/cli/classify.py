"""`edge-classify`: the command a health worker runs. A thin layer over `edge.results.batch`.

Exit status: 0 every scan classified; 1 at least one scan failed (the others were done);
2 usage or set-up error (bad option, missing or mismatched model, unknown device, no camera).

Start-up time is part of the product (a worker waits for it on a Pi), so this command parses
its options with argparse, not Typer: Typer 0.29 validates every option through pydantic,
which costs about 0.1 s of imports here before the first scan (more on a Pi). Only what the
options ask for is imported: no overlay drawing, SQLite, DICOM or camera code otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge.cli.common import EXIT_OK, EXIT_SETUP, EXIT_SOME_FAILED, one_blas_thread
from edge.errors import EdgeError

one_blas_thread()  # before anything imports numpy

DESCRIPTION = (
    "Classify mammogram scans offline: MIAS class, P(abnormal), P(malignant), triage (refer / routine), "
    "optionally a heat-map picture and a results log. Research software, not a medical device."
)
EPILOG = "Exit status: 0 all scans classified, 1 some scans failed (the rest were done), 2 usage or set-up error."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-classify", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="scan files or folders (every scan inside, sorted)")
    parser.add_argument("--model", type=Path, metavar="FILE", help="model .tflite, its manifest .json beside it (default: the packaged model)")
    board = parser.add_mutually_exclusive_group()
    board.add_argument("--device", metavar="NAME", help="board settings: rpi4, rpi5, coral-usb, coral-devboard, x86")
    board.add_argument("--config", type=Path, metavar="FILE", help="board settings from this TOML file")
    parser.add_argument("--exam", nargs=2, action="append", type=Path, metavar=("LEFT", "RIGHT"), default=[],
                        help="the left and right scans of one woman, read side by side (repeatable); "
                        "MIAS names (mdbN odd = right, N+1 = left) are paired without it")
    parser.add_argument("--exams", type=Path, metavar="FILE",
                        help="CSV with the header woman,left,right: which scans belong to one woman (paths relative to the CSV)")
    parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON object per scan per line on stdout")
    parser.add_argument("--overlay", type=Path, metavar="DIR", help="write a heat-map PNG per scan into this folder")
    parser.add_argument("--log", type=Path, metavar="FILE", help="append every result to this SQLite log; skip scans it already holds")
    parser.add_argument("--threads", type=_threads, metavar="N", help="interpreter threads (default: the board's)")
    parser.add_argument("--camera", action="store_true", help="capture one frame with the Raspberry Pi camera and classify it")
    parser.add_argument("--force", action="store_true", help="with --log: classify again scans already in the log")
    parser.add_argument("--read-anyway", action="store_true",
                        help="read scans even when they do not look like a mammogram (you know they are); the answer says it was forced")
    parser.add_argument("--log-patient-id", action="store_true", help="with --log: store the DICOM PatientID (never stored otherwise)")
    parser.add_argument("--id", dest="visit_id", type=_visit_id, metavar="TEXT",
                        help="a visit or patient identifier attached to every result (JSON, log, overlay)")
    parser.add_argument("--version", action="store_true", help="the package version and the installed model (id, data, headline figures)")
    return parser


def _visit_id(text: str) -> str:
    value = text.strip()
    if not value or len(value) > 64 or not value.isprintable():
        raise argparse.ArgumentTypeError("give 1 to 64 printable characters")
    return value


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 64")
    return value


def main(argv: list[str] | None = None) -> None:
    """The console entry point: parse, run, exit with the status; never a traceback."""
    args = build_parser().parse_intermixed_args(argv)  # scans and options in any order; usage error: exit 2
    try:
        options = vars(args)
        if options.pop("version"):
            print(version_text(options["model"], options["device"], options["config"]))
            status = EXIT_OK
        else:
            status = run(**options)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = EXIT_SETUP
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:  # the reader went away (`edge-classify DIR | head -1`): stop, no traceback
        _drop_stdout()
        print("error: output closed (broken pipe); stopped before the end of the batch", file=sys.stderr)
        status = 141  # 128 + SIGPIPE, what a shell reports for a tool stopped this way
    except Exception as exc:  # a bug outside any one scan: one line, not a traceback (EDGE_DEBUG=1 shows it)
        if os.environ.get("EDGE_DEBUG"):
            raise
        print(f"error: unexpected {exc.__class__.__name__} ({exc}); please report it (EDGE_DEBUG=1 shows where)", file=sys.stderr)
        status = EXIT_SETUP
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    sys.exit(status)


def _drop_stdout() -> None:
    """Point stdout at /dev/null so Python's own flush at exit cannot raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
    read_anyway: bool = False,
    log_patient_id: bool = False,
    exam: list | None = None,
    exams: Path | None = None,
    visit_id: str | None = None,
    out=None,
    err=None,
) -> int:
    """The whole command as a function (tests call it directly); returns the exit status."""
    from edge.results.batch import Options, Source, camera_source, run_batch, summary
    from edge.scan.inputs import expand

    from edge.results.exams import Exam, read_exams_csv

    pairs = [Exam(f"exam-{k}", left, right) for k, (left, right) in enumerate(exam or [], 1)]
    pairs += read_exams_csv(exams) if exams is not None else []
    if not paths and not camera and not pairs:
        raise EdgeError("give at least one scan file or folder, --exam LEFT RIGHT, --exams FILE or --camera (see --help)")
    if device and config:
        raise EdgeError("give --device NAME or --config FILE, not both")
    if (force or log_patient_id) and log is None:
        raise EdgeError(f"{'--force' if force else '--log-patient-id'} only makes sense with --log FILE")
    board = choose_board(device, config)
    classifier = _classifier(board, model, threads)
    if overlay is not None:
        _check_folder(overlay)
    options = Options(as_json=as_json, overlay_dir=overlay, force=force, read_anyway=read_anyway, log_patient_id=log_patient_id,
                      exams=pairs, visit_id=visit_id, out=out or sys.stdout, err=err or sys.stderr)
    sources = []
    if camera:
        from edge.scan.camera import capture_grey

        sources.append(camera_source(capture_grey))  # an absent camera is a set-up error: exit 2
    sources_iter = _chain(sources, (Source.from_item(item) for item in expand([*paths, *_unlisted(pairs, paths)])))
    if log is not None:
        from edge.results.log import ResultsLog

        with ResultsLog(log) as results_log:
            options.log = results_log
            tally = run_batch(classifier, sources_iter, options)
    else:
        tally = run_batch(classifier, sources_iter, options)
    if not as_json:
        print(summary(tally, classifier), file=options.out, flush=True)
    return EXIT_SOME_FAILED if tally.failed else EXIT_OK


def version_text(model: Path | None = None, device: str | None = None, config: Path | None = None) -> str:
    """`--version`: the package, and the model this command would run, from its manifest alone
    (the model is not loaded): id, date, the data it was trained on, headline out-of-fold figures."""
    from importlib.metadata import PackageNotFoundError, version

    from edge.inference.classifier import default_model_path
    from edge.inference.manifest import headline_figures, load_manifest, manifest_path_for
    from edge.words import DISCLAIMER, triage_rule

    try:
        package = version("mias-edge")
    except PackageNotFoundError:
        package = "not installed (running from a source folder)"
    lines = [f"edge-classify, mias-edge {package}"]
    path = model or default_model_path(choose_board(device, config).model)
    try:
        manifest = load_manifest(manifest_path_for(path))
    except EdgeError as exc:
        return "\n".join([*lines, f"model: none usable ({exc})"])
    info = manifest.info
    date = info.get("date") or info.get("created") or "date not recorded in its manifest"
    lines.append(f"model {manifest.sha256[:12]} ({path}), {date}")
    data = info.get("data") or {}
    if data:
        lines.append(f"trained on: {data.get('source', 'unknown data')}, {data.get('images', '?')} scans of {data.get('patients', '?')} women")
    figures = headline_figures(manifest)
    if figures:
        lines.append("out-of-fold figures (patient-grouped cross-validation):")
        lines.extend(f"  {figure}" for figure in figures)
    lines.append(f"triage: {triage_rule(manifest.triage_threshold, manifest.target_sensitivity)}")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def _unlisted(pairs, paths: list[Path]) -> list[Path]:
    """The scans named by --exam / --exams: all of them when no PATH is given, else only pairing."""
    if paths:
        return []
    return [p for exam in pairs for p in (exam.left, exam.right) if p is not None]


def _chain(first, rest):
    yield from first
    yield from rest


def choose_board(device: str | None, config: Path | None):
    """The board settings of --device NAME or --config FILE (or the default CPU settings): the one chooser of the device commands."""
    from edge.inference.device import default_config, load_config_file, load_device

    if device:
        return load_device(device)
    if config:
        return load_config_file(config)
    return default_config()


def model_for_board(board, model: Path | None) -> Path:
    """`model`, or the board's packaged variant; a missing variant (an Edge TPU model not compiled) is
    one clear error, the same in edge-classify and edge-bench."""
    from edge.inference.classifier import default_model_path

    if model is not None:
        return model
    model = default_model_path(board.model)
    if not model.is_file():
        hint = (
            "compile model.tflite with edgetpu_compiler and put the result beside it (see edge-convert)"
            if "edgetpu" in board.model
            else "reinstall mias-edge, or give a model with --model FILE"
        )
        raise EdgeError(f"{model}: no packaged model {board.model} for device '{board.name}'; {hint}")
    return model


def _classifier(board, model: Path | None, threads: int | None):
    from edge.inference.classifier import Classifier

    return Classifier.for_board(board, model_for_board(board, model), threads=threads)


def _check_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeError(f"{folder}: cannot create the overlay folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise EdgeError(f"{folder}: not a folder")


if __name__ == "__main__":
    main()
