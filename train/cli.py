"""`edge-train`: load MIAS, cross-validate patient-grouped, write reports and the final model."""

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
    out: Annotated[Optional[Path], typer.Option(help="Run folder: cv_*/ reports, final/model.keras, final/training.json")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print what the loader read and stop.")] = False,
    folds: Annotated[int, typer.Option(help="Cross-validation folds (patient-grouped).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of folds, initialisation, sampling and augmentation.")] = 0,
    epochs: Annotated[int, typer.Option(help="Whole-image epochs per model trained from scratch (208 draws each).")] = 20,
    size: Annotated[int, typer.Option(help="Model input side in pixels (multiple of 32).")] = 256,
    width: Annotated[float, typer.Option(help="Channel multiplier of the network.")] = 1.0,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine schedule).")] = 3e-3,
    init: Annotated[str, typer.Option(help="Initialisation: scratch or patch (patch pre-training on training folds).")] = "patch",
    compare: Annotated[Optional[str], typer.Option(help="Comma-separated initialisations to cross-validate side by side; the better one is shipped.")] = None,
    patch_epochs: Annotated[int, typer.Option(help="Patch pre-training epochs of 2048 patches (init=patch).")] = 10,
    finetune_epochs: Annotated[int, typer.Option(help="Whole-image epochs after patch pre-training (init=patch).")] = 14,
    reports: Annotated[Optional[Path], typer.Option(help="Also write the shipped configuration's CV report here (e.g. reports/cv).")] = None,
    experiments: Annotated[Optional[Path], typer.Option(help="Write the initialisation comparison here (e.g. reports/experiments).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images (tests and smoke runs).", hidden=True)] = None,
) -> None:
    """Train and evaluate the mammogram classifier on mini-MIAS."""
    from train import mias

    records = mias.load(data)
    if summary:
        typer.echo(mias.summary(records))
        return
    if out is None:
        raise fail("--out is required to train (a run folder, e.g. runs/main)")
    if size % 32:
        raise fail(f"--size must be a multiple of 32, got {size}")
    from tqdm import tqdm

    from train.cv import run
    from train.fit import INITS, Config

    chosen = tuple(c.strip() for c in compare.split(",")) if compare else ()
    for name in chosen + (init,):
        if name not in INITS:
            raise fail(f"unknown initialisation {name!r}; choose from {', '.join(INITS)}")
    config = Config(
        size=size, width=width, epochs=epochs, batch=batch, learning_rate=learning_rate, init=init,
        patch_epochs=patch_epochs, finetune_epochs=finetune_epochs,
    )
    run(
        data,
        out,
        config,
        folds=folds,
        seed=seed,
        compare=chosen,
        reports=reports,
        experiments=experiments,
        limit=limit,
        progress=tqdm,
        log=tqdm.write,
        command=" ".join(["edge-train", *sys.argv[1:]]),
    )


def main() -> None:
    app()
