"""Shared by the edge-classify tests (test_classify*, test_device*, test_results_log*, test_camera*).

`model_file` is the model the tests run: the shipped edge/models/model.tflite when the package
has one, otherwise the converter's tiny contract model (tests/conftest.py: tiny_model_dir).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from commands import run

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "edge" / "models" / "model.tflite"
KEYS = {"file", "label", "probabilities", "abnormal", "malignant", "triage", "model"}


@pytest.fixture(scope="session")
def model_file(request) -> Path:
    if SHIPPED.is_file() and SHIPPED.with_suffix(".json").is_file():
        return SHIPPED
    return request.getfixturevalue("tiny_model_dir") / "model.tflite"


def run_classify(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """edge-classify in a subprocess, launched as every test launches a command (tests/commands.py)."""
    return run("edge-classify", *args, env=env, cwd=cwd, timeout=timeout)


def json_lines(stdout: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
