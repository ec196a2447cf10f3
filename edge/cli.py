"""Device command lines: `edge-classify` and `edge-bench`."""

from __future__ import annotations

from edge.cli_common import fail, make_app

classify_app = make_app("Classify mammogram scans on the device (not built yet).")
bench_app = make_app("Benchmark the model on this board (not built yet).")


@classify_app.command()
def classify() -> None:
    raise fail("edge-classify is not built yet")


@bench_app.command()
def bench() -> None:
    raise fail("edge-bench is not built yet")


def classify_main() -> None:
    classify_app()


def bench_main() -> None:
    bench_app()
