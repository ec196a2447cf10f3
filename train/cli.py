"""`edge-train`: load the scans (MIAS or labels.csv folders), cross-validate the exam reader patient-grouped, write reports and the final model."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge.cli.common import one_blas_thread
from train.desktop_cli import fail, friendly_errors, make_app

one_blas_thread()  # before numpy loads: the cell head's fits, beside another job, ran 4x faster with one
from train.distil import EPOCHS as DISTIL_EPOCHS  # noqa: E402
from train.finetune import EPOCHS as FINETUNE_EPOCHS  # noqa: E402
from train.reader import CELL_HIDDEN, CELL_SEEDS, CONTEXT  # noqa: E402

app = make_app(__doc__)


class Trunk(str, Enum):
    fine_tuned = "fine-tuned"
    distilled = "distilled"


class Strategy(str, Enum):
    default = "default"
    mirrored = "mirrored"
    multiworker = "multiworker"


GRADIENT = "Gradient training (--strategy)"


@app.command()
@friendly_errors
def train(
    data: Annotated[list[Path], typer.Option(help="The scans: a mini-MIAS folder (Info.txt, mdbNNN.pgm or .png) or a folder with a labels.csv (see the docs); give it once per source (each source's figures are reported apart).")],
    trunk: Annotated[Trunk, typer.Option(help="distilled: the ImageNet trunk distilled for int8, frozen, with the cell-head reader of one source (the shipped model); fine-tuned: the trunk's later blocks trained quantization-aware on every --data source's findings, full int8 (not shipped yet: docs/retraining.md).")] = Trunk.distilled,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs (--trunk fine-tuned).")] = FINETUNE_EPOCHS,
    out: Annotated[Optional[Path], typer.Option(help="Run folder: cv/ report (unless --reports), final/model.keras, final/training.json")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print what the loader read and stop.")] = False,
    size: Annotated[int, typer.Option(help="Model input side in pixels (a multiple of 32 times every scale).")] = 512,
    scales: Annotated[str, typer.Option(help="Comma-separated down-sampling factors the trunk reads the input at (1 = full size).")] = "1,2",
    folds: Annotated[int, typer.Option(help="Cross-validation folds (patient-grouped); with --strategy, fold 0 is held out.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and of the cell sampling.")] = 0,
    alone: Annotated[bool, typer.Option("--alone", help="Read every scan alone (no comparison with the other breast).")] = False,
    hard_negatives: Annotated[int, typer.Option(help="Refit the cell head with each normal breast's N hottest cells added (0: off).")] = 0,
    distil_epochs: Annotated[int, typer.Option(help="Epochs of quantization-aware distillation of the trunk, so that its int8 version keeps the float features (0: ImageNet's weights as they are).")] = DISTIL_EPOCHS,
    activations: Annotated[str, typer.Option(metavar="int16|int8", help="The board trunk's activations, whose features the heads are fitted on: int16 (int8 weights, TFLite's 16x8 mode: the float network's answers, on a CPU) or int8 (what an Edge TPU runs). edge-convert takes this choice from training.json.")] = "int16",
    context: Annotated[int, typer.Option(metavar="K", help="The cell head also reads the mean features of each cell's K x K neighbourhood (odd K of at least 3; 0: the cell alone).")] = CONTEXT,
    cell_hidden: Annotated[int, typer.Option(metavar="UNITS", help="Hidden ReLU units of the cell head, a small network fitted on the cells (0: a logistic regression).")] = CELL_HIDDEN,
    cell_seeds: Annotated[int, typer.Option(metavar="N", help="Cell-head networks fitted from different random starts, their logits averaged (1: one network).")] = CELL_SEEDS,
    reports: Annotated[Optional[Path], typer.Option(help="Write the cross-validation report here (e.g. reports/cv) instead of OUT/cv.")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Folder for cached trunk features (default: ~/.cache/mias-edge/trunk).")] = None,
    strategy: Annotated[Optional[Strategy], typer.Option(
        help="Train the network by gradient descent on tf.distribute instead of the cross-validated logistic fit: "
        "default (one device), mirrored (every GPU of this machine), multiworker (the cluster in TF_CONFIG).",
        rich_help_panel=GRADIENT)] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (default 300).", rich_help_panel=GRADIENT)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Scans per step, summed over every replica and worker (default 16).", rich_help_panel=GRADIENT)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="AdamW learning rate (default 0.001).", rich_help_panel=GRADIENT)] = None,
    fine_tune: Annotated[Optional[int], typer.Option(help="Also train the trunk's last N of 11 blocks (default 0: heads only).", rich_help_panel=GRADIENT)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images (tests and smoke runs).", hidden=True)] = None,
) -> None:
    """Train and evaluate the mammogram reader on mini-MIAS or on a folder with a labels.csv."""
    from train import records as training_records

    records = training_records.load_all(data)
    if summary:
        typer.echo(training_records.summary(records))
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
    gradient = {"--steps": steps, "--batch-size": batch_size, "--learning-rate": learning_rate, "--fine-tune": fine_tune}
    if trunk is Trunk.fine_tuned and strategy is None:
        distilled = {"--alone": alone or None, "--hard-negatives": hard_negatives or None,
                     "--context": context if context != CONTEXT else None, "--activations": activations if activations != "int16" else None,
                     "--cell-hidden": cell_hidden if cell_hidden != CELL_HIDDEN else None,
                     "--cell-seeds": cell_seeds if cell_seeds != CELL_SEEDS else None,
                     "--distil-epochs": distil_epochs if distil_epochs != DISTIL_EPOCHS else None}
        given = [name for name, value in gradient.items() if value is not None]
        if given:
            raise fail(f"{', '.join(given)}: only for gradient training (add --strategy)")
        given = [name for name, value in distilled.items() if value is not None]
        if given:
            raise fail(f"{', '.join(given)}: not for the fine-tuned trunk (add --trunk distilled)")
        if epochs < 1:
            raise fail(f"--epochs must be 1 or more, got {epochs}")
        from tqdm import tqdm

        from train.cv import default_cache
        from train.tuned_cv import run as run_tuned

        run_tuned(data, out, size, factors, folds, seed, epochs, reports, cache or default_cache(), limit, progress=tqdm,
                  log=tqdm.write, command=" ".join(["edge-train", *sys.argv[1:]]))
        return
    if len(data) != 1:
        raise fail("--data once only: the distilled trunk and --strategy read one source")
    data = data[0]
    if strategy is not None:
        logistic = {"--hard-negatives": hard_negatives or None, "--context": context if context != CONTEXT else None,
                    "--cell-hidden": cell_hidden if cell_hidden != CELL_HIDDEN else None,
                    "--cell-seeds": cell_seeds if cell_seeds != CELL_SEEDS else None, "--reports": reports, "--cache": cache,
                    "--distil-epochs": distil_epochs if distil_epochs != DISTIL_EPOCHS else None}
        given = [name for name, value in logistic.items() if value is not None]
        if given:
            raise fail(f"{', '.join(given)}: only for the cross-validated logistic fit (without --strategy)")
        return train_distributed(data, out, strategy.value, size, factors, folds, seed, alone, limit, **gradient)
    given = [name for name, value in gradient.items() if value is not None]
    if given:
        raise fail(f"{', '.join(given)}: only for gradient training (add --strategy)")
    from tqdm import tqdm

    from train.cv import Config, default_cache, run
    from train.reader import Options

    if distil_epochs < 0:
        raise fail(f"--distil-epochs must be 0 or more, got {distil_epochs}")
    if cell_hidden < 0:
        raise fail(f"--cell-hidden must be 0 or more, got {cell_hidden}")
    if cell_seeds < 1:
        raise fail(f"--cell-seeds must be 1 or more, got {cell_seeds}")
    from train.quantizer import ACTIVATIONS

    if activations not in ACTIVATIONS:
        raise fail(f"--activations must be {' or '.join(ACTIVATIONS)}, got {activations}")
    try:
        options = Options(paired=not alone, hard_negatives=hard_negatives, context=context, cell_hidden=cell_hidden,
                          cell_seeds=cell_seeds, seed=seed)
    except ValueError as error:  # the option's own check, named as the flag
        raise fail(f"--{error}") from None
    config = Config(size=size, factors=factors, features=activations, folds=folds, seed=seed, distil_epochs=distil_epochs,
                    options=options)
    run(data, out, config, reports=reports, cache=cache or default_cache(), limit=limit, progress=tqdm, log=tqdm.write,
        command=" ".join(["edge-train", *sys.argv[1:]]))


def train_distributed(data, out, strategy, size, factors, folds, seed, alone, limit, **gradient) -> None:
    """`edge-train --strategy`: the options checked, then `train.distributed.run`."""
    from train.distributed import Settings, run

    chosen = {name.lstrip("-").replace("-", "_"): value for name, value in gradient.items() if value is not None}
    settings = Settings(size=size, factors=factors, folds=folds, seed=seed, paired=not alone, **chosen)
    if settings.steps < 1 or settings.batch_size < 1 or not settings.learning_rate > 0:
        raise fail("--steps, --batch-size and --learning-rate must be above 0")
    if not 0 <= settings.fine_tune <= 11:
        raise fail(f"--fine-tune must be 0 to 11 (the trunk's blocks), got {settings.fine_tune}")
    run(data, out, settings, strategy, limit=limit, log=lambda line: print(line, flush=True),
        command=" ".join(["edge-train", *sys.argv[1:]]))


def main() -> None:
    app()
