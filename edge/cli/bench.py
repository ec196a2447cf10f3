"""`edge-bench`: time the model on this board. A thin layer over `edge.inference.bench`.

Exit status: 0 done; 2 usage or set-up error (bad option, missing model or image, unknown device).

Parsed with argparse like `edge-classify` (edge/cli/classify.py), so a board needs no
command-line library besides the standard one. To add an option: one `add_argument` in
`build_parser` and its use in `run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.cli.common import at_least, finish, one_blas_thread
from edge.errors import EdgeError

one_blas_thread()  # before anything imports numpy

DESCRIPTION = (
    "Time the model on this board: model load, first inference, bare invoke, end to end per scan, "
    "cold start of edge-classify and peak memory; --compare times other .tflite files in the same loop. "
    "Benchmarks the way TFLite's benchmark_model does (warm-up, then timed runs)."
)
EPILOG = "Exit status: 0 done, 2 usage or set-up error."
SCHEDULES = ("auto", "interleaved", "sequential")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-bench", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--model", type=Path, metavar="FILE", help="model file (default: the packaged model the device uses)")
    board = parser.add_mutually_exclusive_group()
    board.add_argument("--device", metavar="NAME", help="board settings device_configs/NAME.toml (rpi4, rpi5, coral-usb, ...)")
    board.add_argument("--config", type=Path, metavar="FILE", help="board settings from this TOML file instead")
    parser.add_argument("--threads", type=at_least(1), metavar="N", help="interpreter threads (default: the device's)")
    parser.add_argument("--runs", type=at_least(1), default=100, metavar="N", help="timed runs, after the warm-up (default: 100)")
    parser.add_argument("--warmup", type=at_least(0), default=10, metavar="N", help="warm-up runs, not counted (default: 10)")
    parser.add_argument("--cold-runs", type=at_least(0), default=5, metavar="N",
                        help="edge-classify processes launched for the cold start (0: skip; default: 5)")
    parser.add_argument("--image", type=Path, metavar="FILE",
                        help="scan for end to end and cold start (default: a synthetic 1024x1024 scan)")
    parser.add_argument("--compare", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="other .tflite files, timed in the same loop: --compare A.tflite B.tflite")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print the machine-readable record instead of the table")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON record to this file")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="write the record as this board's figure to commit, reports/boards/NAME.json (it must be "
                             "the board the device config is for; the board table of docs/benchmarks.md is made from these files)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="auto",
                        help="interleaved, sequential, or auto (sequential with a delegate: an Edge TPU caches one model)")
    return parser


def run(args: argparse.Namespace) -> int:
    """The whole command for parsed `args`; returns the exit status."""
    import json

    from edge.inference import bench as lib
    from edge.inference.classifier import Classifier
    from edge.cli.classify import choose_board, model_for_board
    from edge.inference.device import board_mismatch
    from edge.fileio import atomic_write_text

    board = choose_board(args.device, args.config)
    threads = args.threads or board.threads
    model = model_for_board(board, args.model)
    mismatch = board_mismatch(board)
    if mismatch and args.record is not None:
        raise EdgeError(f"--record: {mismatch.removeprefix('note: ')}; measure a board record on that board")
    if mismatch:
        print(mismatch, file=sys.stderr)
    for path in [model, *args.compare]:
        if not Path(path).is_file():
            raise EdgeError(f"{path}: model file not found")
    if args.record is not None:
        _check_can_record(args, Path(model))
    if args.image is not None and not args.image.is_file():
        raise EdgeError(f"{args.image}: no such file")
    passed_on = ["--device", args.device] if args.device else ["--config", str(args.config)] if args.config else []
    settings = lib.Settings(
        model=Path(model),
        device=board.name,
        device_description=board.description,
        threads=threads,
        delegate=board.delegate,
        runtime=board.runtime,
        kernels=board.kernels,
        board_name=board.board or board.description,
        runs=args.runs,
        warmup=args.warmup,
        cold_runs=args.cold_runs,
        image=args.image,
        compare=list(args.compare),
        classify_args=passed_on + ["--threads", str(threads)],
        make_classifier=lambda: Classifier(model, threads=threads, delegate=board.delegate, runtime=board.runtime,
                                           kernels=board.kernels),
        schedule=args.schedule,
    )
    progress = (lambda _: None) if args.as_json else (lambda message: print(message, file=sys.stderr, flush=True))
    record = lib.run_benchmark(settings, progress)
    text = json.dumps(record, indent=2) + "\n"
    if args.out is not None:
        atomic_write_text(args.out, text)
    if args.record is not None:
        atomic_write_text(args.record, json.dumps(lib.check_record(record, str(args.record)), indent=2) + "\n")
        print(f"recorded {args.record}; commit it, and python scripts/bench_readme.py reports/bench/x86.json --write "
              "puts it in the board table of docs/benchmarks.md", file=sys.stderr)
    print(text if args.as_json else lib.format_table(record), end="")
    return 0


def _check_can_record(args: argparse.Namespace, model: Path) -> None:
    """A board record needs every figure of the board table: refuse before minutes of timing are lost."""
    from edge.inference.manifest import manifest_path_for

    if args.cold_runs < 1:
        raise EdgeError("--record needs the cold-start runs (--cold-runs 1 or more): the board table shows the cold start")
    if not manifest_path_for(model).is_file():
        raise EdgeError(f"--record needs a model with its manifest ({model} has none): end to end and cold start run the whole classifier")
    if args.record.suffix != ".json":
        raise EdgeError(f"--record {args.record}: a record is a .json file (reports/boards/NAME.json)")
    if not args.record.parent.is_dir():
        raise EdgeError(f"--record {args.record}: no folder {args.record.parent}")


def bench_main(argv: list[str] | None = None) -> None:
    """The console entry point: parse (a usage error exits 2), run, exit with the status."""
    args = build_parser().parse_args(argv)
    finish(lambda: run(args))


if __name__ == "__main__":
    bench_main()
