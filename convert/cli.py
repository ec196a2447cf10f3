"""`edge-convert`: quantize a trained Keras model to an int8 TFLite model and its manifest."""

from __future__ import annotations

from edge.cli_common import fail, make_app

app = make_app(__doc__)


@app.command()
def convert() -> None:
    """Quantize a trained model for the board (not built yet)."""
    raise fail("edge-convert is not built yet")


def main() -> None:
    app()
