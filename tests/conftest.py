"""Shared fixtures: the real development split of mini-MIAS, as PNG and restored as PGM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIAS_DIR = Path(os.environ.get("MIAS_DIR", REPO.parent / "shared" / "mias")).resolve()
RSNA_DIR = Path(os.environ.get("RSNA_DIR", REPO.parent / "shared" / "rsna")).resolve()


@pytest.fixture(scope="session")
def mias_dir() -> Path:
    if not (MIAS_DIR / "Info.txt").is_file():
        pytest.fail(f"mini-MIAS not found at {MIAS_DIR}; set MIAS_DIR")
    return MIAS_DIR


@pytest.fixture(scope="session")
def rsna_dir() -> Path:
    """The digital screening images (../shared/rsna: 2,222 JPEGs, about 1 in 7 of inverted polarity)."""
    if not (RSNA_DIR / "labels.csv").is_file():
        pytest.fail(f"the digital screening images were not found at {RSNA_DIR}; set RSNA_DIR")
    return RSNA_DIR


@pytest.fixture(scope="session")
def pgm_dir(mias_dir, tmp_path_factory) -> Path:
    """The same scans as the original distribution ships them: binary PGM, byte for byte."""
    dest = tmp_path_factory.mktemp("mias_pgm")
    subprocess.run([sys.executable, str(mias_dir / "restore_pgm.py"), str(dest)], check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def records(mias_dir):
    from train import mias

    return mias.load(mias_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(records, tmp_path_factory) -> Path:
    """A folder with model.tflite + model.json: a tiny random-weight Keras model obeying the
    training contract (64x64 uint8-valued input, outputs classes/abnormal/malignant/heatmap),
    converted to int8 by convert.quantize with 8 real prepared MIAS scans as calibration.
    Not a trained model: its answers mean nothing, its shapes and manifest are real."""
    from tiny_support import build_tiny_model_dir

    folder = tmp_path_factory.mktemp("tiny_model")
    return build_tiny_model_dir(records[:8], folder)
