"""Shared fixtures: the real development split of mini-MIAS, as PNG and restored as PGM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIAS_DIR = Path(os.environ.get("MIAS_DIR", REPO.parent / "shared" / "mias")).resolve()


@pytest.fixture(scope="session")
def mias_dir() -> Path:
    if not (MIAS_DIR / "Info.txt").is_file():
        pytest.fail(f"mini-MIAS not found at {MIAS_DIR}; set MIAS_DIR")
    return MIAS_DIR


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
