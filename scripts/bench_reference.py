"""Reference models for `edge-bench --compare`: the yardsticks our int8 model is timed against.

- MobileNetV2 (224x224, 7 classes, random weights: timing does not depend on them),
  converted to full int8 by `train.quantizer.quantize`, the very function `edge-convert`
  uses, calibrated on real prepared MIAS scans. It is the standard mobile classifier whose
  speed is published for the boards (Pi 4 CPU about 22-45 ms, Coral USB about 2.6 ms), so the
  ratio measured on any machine turns those anchors into an estimate for our model.
  It takes what our model takes, one prepared greyscale scan (1, 224, 224, 1) of grey levels
  0..255, so its first convolution has 3x3x1 kernels instead of 3x3x3 (as when ImageNet
  weights are ported to greyscale by summing over RGB); everything after it is the standard
  network. Timed on this machine in one interleaved loop against the standard 224x224x3
  model converted with the same settings, its median invoke was the same (ratio 1.00; 0.99
  paired). Feeding three channels instead costs 4-6 %: a CONCATENATION in front, or a
  Rescaling layer, which becomes a MUL and an ADD over the whole input.
- Our own Keras model converted to float32 TFLite without quantization, to show what int8 buys.

    python scripts/bench_reference.py mobilenet [--data ../shared/mias] [--out build/bench/mobilenetv2_int8.tflite]
    python scripts/bench_reference.py float MODEL.keras [--out build/bench/model_float.tflite]

A bench tool of the repository, not part of the installed package: desktop only (imports
TensorFlow; needs `.[train]`). The outputs are regenerated, not committed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from train.desktop_cli import friendly_errors, make_app
from edge.errors import EdgeError
from edge.fileio import atomic_write_bytes

REFERENCE_SIZE = 224
REFERENCE_CLASSES = 7
CALIBRATION_SCANS = 64
DEFAULT_DATA = Path(os.environ.get("MIAS_DIR", "../shared/mias"))
DEFAULT_MOBILENET = Path("build/bench/mobilenetv2_int8.tflite")
DEFAULT_FLOAT = Path("build/bench/model_float.tflite")


def mobilenet_v2(size: int = REFERENCE_SIZE, classes: int = REFERENCE_CLASSES, seed: int = 0) -> Any:
    """keras.applications.MobileNetV2 (alpha 1.0, random seeded weights) on our input contract:
    (1, size, size, 1) float32 grey levels 0..255, batch fixed at 1 as the Edge TPU needs."""
    import keras

    keras.utils.set_random_seed(seed)
    scan = keras.Input(shape=(size, size, 1), batch_size=1, name="scan")
    return keras.applications.MobileNetV2(input_tensor=scan, weights=None, classes=classes, classifier_activation="softmax")


def calibration_images(data: str | Path, size: int = REFERENCE_SIZE, count: int = CALIBRATION_SCANS) -> Any:
    """`count` real MIAS scans prepared at `size` by the shared preprocessing, as (N, S, S) uint8."""
    from convert.quantize import prepared_images
    from train import mias

    try:
        records = mias.load(Path(data))
    except (OSError, ValueError) as exc:
        raise EdgeError(f"{data}: cannot read mini-MIAS for calibration ({exc})") from None
    if not records:
        raise EdgeError(f"{data}: no MIAS scans found for calibration")
    step = max(1, len(records) // count)
    return prepared_images(records[::step][:count], size)


def build_mobilenet_int8(data: str | Path, size: int = REFERENCE_SIZE) -> bytes:
    """MobileNetV2 converted to int8 exactly as `edge-convert` converts our model."""
    from train.quantizer import quantize

    return quantize(mobilenet_v2(size), calibration_images(data, size))


def float_tflite(keras_path: str | Path) -> bytes:
    """Our trained Keras model as a float32 TFLite model: the same graph, no quantization."""
    import keras

    from convert.quantize import float_tflite as convert

    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise EdgeError(f"{keras_path}: Keras model not found")
    return convert(keras.saving.load_model(keras_path, compile=False))


app = make_app(__doc__.split("\n\n")[0])


@app.command("mobilenet")
def mobilenet_command(
    data: Path = typer.Option(DEFAULT_DATA, "--data", help="mini-MIAS folder, for int8 calibration."),
    out: Path = typer.Option(DEFAULT_MOBILENET, "--out", help="Where to write the int8 .tflite."),
) -> None:
    """Build MobileNetV2 224 and convert it to int8 as edge-convert does."""
    _write(out, lambda: build_mobilenet_int8(data))


@app.command("float")
def float_command(
    keras_model: Path = typer.Argument(..., help="The trained Keras model (.keras)."),
    out: Path = typer.Option(DEFAULT_FLOAT, "--out", help="Where to write the float32 .tflite."),
) -> None:
    """Convert our Keras model to float32 TFLite, without quantization."""
    _write(out, lambda: float_tflite(keras_model))


@friendly_errors
def _write(out: Path, build: Any) -> None:
    content = build()
    atomic_write_bytes(out, content)
    print(f"wrote {out} ({len(content) / 1e6:.2f} MB)")


def main(argv: Optional[list[str]] = None) -> None:
    app(args=argv)


if __name__ == "__main__":
    main()
