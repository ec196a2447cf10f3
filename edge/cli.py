"""Device command lines: `edge-classify` and `edge-bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.cli_common import fail, friendly_errors, make_app
from edge.errors import EdgeError

from edge.classify_cli import classify_app  # edge-classify: the command and its options live there
bench_app = make_app(
    "Time the model on this board: model load, first inference, bare invoke, end to end per scan, "
    "cold start of edge-classify and peak memory; --compare times other .tflite files in the same loop."
)


@bench_app.command()
def bench(
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the packaged model the device uses)."),
    device: Optional[str] = typer.Option(None, "--device", help="Board settings device_configs/NAME.toml (rpi4, rpi5, coral-usb, ...)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Board settings from this TOML file instead."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Interpreter threads (default: the device's)."),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed runs, after the warm-up."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Warm-up runs, not counted."),
    cold_runs: int = typer.Option(5, "--cold-runs", min=0, help="edge-classify processes launched for the cold start (0: skip)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Scan for end to end and cold start (default: a synthetic 1024x1024 scan)."),
    compare: list[Path] = typer.Option([], "--compare", help="Other .tflite files, timed in the same loop: --compare A.tflite B.tflite"),
    as_json: bool = typer.Option(False, "--json", help="Print the machine-readable record instead of the table."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON record to this file."),
    schedule: str = typer.Option("auto", "--schedule", help="interleaved, sequential, or auto (sequential with a delegate: an Edge TPU caches one model)."),
) -> None:
    """Benchmark a model on this board, the way TFLite's benchmark_model does (warm-up, then timed runs)."""
    _bench(model, device, config, threads, runs, warmup, cold_runs, image, compare, as_json, out, schedule)


def _bench_board(device: Optional[str], config: Optional[Path]):
    from edge.device import default_config, load_config_file, load_device

    if device and config:
        raise EdgeError("give --device NAME or --config FILE, not both")
    return load_device(device) if device else load_config_file(config) if config else default_config()


@friendly_errors
def _bench(model, device, config, threads, runs, warmup, cold_runs, image, compare, as_json, out, schedule) -> None:
    import json
    import sys

    from edge import bench as lib
    from edge.classifier import Classifier, default_model_path
    from edge.fileio import atomic_write_text

    board = _bench_board(device, config)
    threads = threads or board.threads
    model = model or default_model_path(board.model)
    for path in [model, *compare]:
        if not Path(path).is_file():
            raise EdgeError(f"{path}: model file not found")
    if image is not None and not image.is_file():
        raise EdgeError(f"{image}: no such file")
    passed_on = ["--device", device] if device else ["--config", str(config)] if config else []
    settings = lib.Settings(
        model=Path(model),
        device=board.name,
        device_description=board.description,
        threads=threads,
        delegate=board.delegate,
        runtime=board.runtime,
        runs=runs,
        warmup=warmup,
        cold_runs=cold_runs,
        image=image,
        compare=[Path(p) for p in compare],
        classify_args=passed_on + ["--threads", str(threads)],
        make_classifier=lambda: Classifier(model, threads=threads, delegate=board.delegate, runtime=board.runtime),
        schedule=schedule,
    )
    progress = (lambda _: None) if as_json else (lambda message: print(message, file=sys.stderr, flush=True))
    record = lib.run_benchmark(settings, progress)
    text = json.dumps(record, indent=2) + "\n"
    if out is not None:
        atomic_write_text(out, text)
    print(text if as_json else lib.format_table(record), end="")


def classify_main() -> None:
    classify_app()


def bench_main() -> None:
    import sys

    bench_app(args=_several_after("--compare", sys.argv[1:]))


def _several_after(option: str, args: list[str]) -> list[str]:
    """`--compare A B` as `--compare A --compare B`: the values run up to the next option."""
    expanded, taking = [], False
    for arg in args:
        if arg == option:
            taking = True
            continue
        if taking and not arg.startswith("-"):
            expanded += [option, arg]
            continue
        taking = False
        expanded.append(arg)
    return expanded
