"""The bad-input corpus through the real `edge-classify`, in one batch with real scans.

Each bad input must give one line naming the file and the problem (no traceback), the real
scans around them must still be classified, and the exit status at the end must be 1. An
all-black or all-white image decodes, but is refused as not a mammogram (edge.scan.plausibility).
The batch runs without the CAP_DAC_OVERRIDE capability (see `test_a_file_the_process_may_not_read`),
so a chmod-000 file really is unreadable even though the tests run as root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from commands import command
from test_bad_input import SCAN, Case, _without_file_capabilities, build_corpus, record_figures

GOOD = ("mdb006.png", "mdb007.png")


@pytest.fixture(scope="module")
def batch(mias_dir, tmp_path_factory) -> tuple[list[Path], list[Case], list[Path]]:
    """(command-line paths, cases, real scans): a folder of bad inputs with real scans among
    them, plus the cases only the CLI meets (missing path, empty folder, a looping folder walk)."""
    root = tmp_path_factory.mktemp("bad_batch")
    folder = root / "scans"
    cases = build_corpus(folder, np.asarray(Image.open(mias_dir / SCAN)))
    good = []
    for name in GOOD:
        shutil.copy(mias_dir / name, folder / name)
        good.append(folder / name)
    locked = folder / "locked.png"
    shutil.copy(mias_dir / SCAN, locked)
    locked.chmod(0)
    cases.append(Case("file without read permission", locked, "permission denied"))
    empty = root / "empty_folder"
    empty.mkdir()
    (empty / "readme.txt").write_text("no scans here")
    cases.append(Case("folder with no images", empty, "no scans"))
    walk = root / "walk"
    (walk / "sub").mkdir(parents=True)
    shutil.copy(mias_dir / GOOD[0], walk / "sub" / "copy.png")
    (walk / "sub" / "up").symlink_to("..", target_is_directory=True)  # walk/sub/up -> walk: a loop
    cases.append(Case("symlink loop in a folder walk", walk / "sub" / "up", "loop"))
    good.append(walk / "sub" / "copy.png")
    missing = next(case.path for case in cases if case.kind == "path that does not exist")
    return [folder, missing, empty, walk], cases, good


def cli_error(case: Case) -> str:
    """What the command says: the decoder's error, or for a blank image (which the decoder reads
    and prepare flags) the refusal of edge.scan.plausibility."""
    return "does not look like a mammogram: blank" if case.flagged else case.error


def _run(batch, *options: str, timeout: float = 120) -> subprocess.CompletedProcess:
    paths = batch[0]
    argv = _without_file_capabilities(command("edge-classify", *paths, *options))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def test_every_bad_input_is_one_line_and_the_batch_goes_on(batch, tiny_model_dir, tmp_path):
    _, cases, good = batch
    result = _run(batch, "--model", str(tiny_model_dir / "model.tflite"), "--json", "--log", str(tmp_path / "log.db"), "--log-patient-id")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_file = {record["file"]: record for record in records}
    assert len(by_file) == len(records)  # each item reported once
    for case in cases:
        record = by_file.get(str(case.path))
        assert record is not None, (case.kind, sorted(by_file))
        if case.error is None and not case.flagged:
            assert "label" in record and "error" not in record, (case.kind, record)
            assert not record.get("quality"), (case.kind, record)
        else:
            assert cli_error(case) in record.get("error", ""), (case.kind, record)
            assert record["error"].startswith(str(case.path)), (case.kind, record)
    for path in good:
        assert "label" in by_file[str(path)] and not by_file[str(path)].get("quality"), by_file[str(path)]
    record_figures("bad_input_cli", {"kinds": [case.kind for case in cases], "count": len(cases),
                                     "real_scans_classified_alongside": len(good)})


def test_readable_mode_prints_one_error_line_per_bad_input(batch, tiny_model_dir):
    _, cases, good = batch
    result = _run(batch, "--model", str(tiny_model_dir / "model.tflite"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    for case in cases:
        if case.error is not None or case.flagged:
            mine = [line for line in errors if line.startswith(f"error: {case.path}:")]
            assert len(mine) == 1 and cli_error(case) in mine[0], (case.kind, mine)
    expected_errors = sum(case.error is not None or case.flagged for case in cases)
    assert len(errors) == expected_errors, errors
    for path in good:
        assert any(line.startswith(f"{path}  ") for line in result.stdout.splitlines()), result.stdout


def test_a_file_name_with_a_newline_and_an_escape_code_stays_one_safe_line(mias_dir, tiny_model_dir, tmp_path):
    """File names come from USB sticks too: neither a newline nor a terminal escape sequence in
    one may split the error line or reach the terminal raw."""
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(mias_dir / GOOD[0], folder / "good.png")
    bad = folder / "bad\x1b[2Jname\nline.png"
    bad.write_bytes(b"not an image")
    argv = command("edge-classify", folder, "--model", tiny_model_dir / "model.tflite")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "\x1b" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [f"error: {folder}/bad\\x1b[2Jname\\nline.png: not an image file (or a format this build cannot read)"]
    json_run = subprocess.run(argv + ["--json"], capture_output=True, text=True, timeout=120)
    records = [json.loads(line) for line in json_run.stdout.splitlines()]
    assert [record["file"] for record in records] == [str(bad), str(folder / "good.png")]  # JSON keeps the exact name
