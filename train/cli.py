"""`edge-train`: load MIAS, cross-validate the exam reader patient-grouped, write reports and the final model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge.cli_common import fail, friendly_errors, make_app

app = make_app(__doc__)


@app.command()
@friendly_errors
def train(
    data: Annotated[Path, typer.Option(help="mini-MIAS folder: Info.txt and mdbNNN.pgm or .png")],
    out: Annotated[Optional[Path], typer.Option(help="Run folder: cv/ report (unless --reports), final/model.keras, final/training.json")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print what the loader read and stop.")] = False,
    size: Annotated[int, typer.Option(help="Model input side in pixels (a multiple of 32 times every scale).")] = 512,
    scales: Annotated[str, typer.Option(help="Comma-separated down-sampling factors the trunk reads the input at (1 = full size).")] = "1,2",
    folds: Annotated[int, typer.Option(help="Cross-validation folds (patient-grouped).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and of the cell sampling.")] = 0,
    alone: Annotated[bool, typer.Option("--alone", help="Read every scan alone (no comparison with the other breast).")] = False,
    hard_negatives: Annotated[int, typer.Option(help="Refit the cell head with each normal breast's N hottest cells added (0: off).")] = 0,
    reports: Annotated[Optional[Path], typer.Option(help="Write the cross-validation report here (e.g. reports/cv) instead of OUT/cv.")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Folder for cached trunk features (default: ~/.cache/mias-edge/trunk).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images (tests and smoke runs).", hidden=True)] = None,
) -> None:
    """Train and evaluate the mammogram reader on mini-MIAS."""
    from train import mias

    records = mias.load(data)
    if summary:
        typer.echo(mias.summary(records))
        return
    if out is None:
        raise fail("--out is required to train (a run folder, e.g. runs/main)")
    if folds < 3:
        raise fail(f"--folds must be at least 3 (the reading stage is fitted on inner folds), got {folds}")
    try:
        factors = tuple(int(f) for f in scales.split(","))
    except ValueError:
        raise fail(f"--scales must be whole numbers separated by commas, got {scales!r}") from None
    if not factors or min(factors) < 1 or factors != tuple(sorted(set(factors))):
        raise fail(f"--scales must be increasing factors of at least 1, got {scales!r}")
    if any(size % (32 * f) for f in factors):
        raise fail(f"--size {size} must be a multiple of 32 times every scale factor ({scales})")
    from tqdm import tqdm

    from train.cv import Config, default_cache, run
    from train.reader import Options

    config = Config(size=size, factors=factors, folds=folds, seed=seed,
                    options=Options(paired=not alone, hard_negatives=hard_negatives, seed=seed))
    run(data, out, config, reports=reports, cache=cache or default_cache(), limit=limit, progress=tqdm, log=tqdm.write,
        command=" ".join(["edge-train", *sys.argv[1:]]))


def main() -> None:
    app()
