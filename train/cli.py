"""`edge-train`: load MIAS, cross-validate patient-grouped, write reports and the final model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.cli_common import fail, friendly_errors, make_app

app = make_app(__doc__)


@app.command()
@friendly_errors
def train(
    data: Annotated[Path, typer.Option(help="mini-MIAS folder: Info.txt and mdbNNN.pgm or .png")],
    summary: Annotated[bool, typer.Option("--summary", help="Print what the loader read and stop.")] = False,
) -> None:
    """Train and evaluate the mammogram classifier on mini-MIAS."""
    from train import mias

    records = mias.load(data)
    if summary:
        typer.echo(mias.summary(records))
        return
    raise fail("training is not built yet; use --summary")


def main() -> None:
    app()
