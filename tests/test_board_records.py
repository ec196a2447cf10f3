"""Board figures users can commit: `edge-bench --record FILE` writes one, `edge.inference.bench.read_record`
reads it back, and scripts/bench_readme.py makes the board table of docs/benchmarks.md from the committed
records, keeping an estimate row for each board that has none yet.

A real edge-bench run (the packaged model, a real interpreter, a real edge-classify process for
the cold start), the real script on a copy of that page. No test asserts a speed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from commands import run
from edge.inference import bench
from edge.inference.device import board_mismatch, load_device
from edge.errors import EdgeError
from train.doc_blocks import markers
from edge.runtime import runtime_version

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_readme.py"
X86 = REPO / "reports" / "bench" / "x86.json"
SHIPPED = json.loads((REPO / "edge" / "models" / "model.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A record of this machine from a short real run: `edge-bench --device x86 --record FILE`."""
    path = tmp_path_factory.mktemp("record") / "x86-test.json"
    result = run("edge-bench", "--device", "x86", "--runs", "3", "--warmup", "1", "--cold-runs", "1", "--record", path,
                 timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"recorded {path}" in result.stderr
    return path


def block_of(text: str, name: str) -> str:
    begin, end = markers(name)
    return text[text.index(begin) : text.index(end) + len(end)]


def bench_readme(*args: object) -> "subprocess.CompletedProcess":  # noqa: F821
    import subprocess

    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_a_real_run_is_recorded_with_what_the_board_table_needs(recorded):
    record = bench.read_record(recorded)
    config = load_device("x86")
    assert record["tool"] == "edge-bench" and record["device"] == "x86"
    assert record["board_name"] == config.description  # x86.toml names no board: its description
    assert record["system"]["cpu"] == bench.cpu_model() and record["system"]["cores"] >= 1
    assert record["runtime"] == runtime_version() and record["kernels"] == config.kernels == "builtin"
    assert record["delegate"] == "" and record["threads"] == config.threads
    assert record["model"]["sha256"] == SHIPPED["sha256"]
    assert record["invoke"]["count"] == 3 and record["end_to_end"]["count"] == 3 and record["cold_start"]["count"] == 1
    assert 0 < record["invoke"]["median_ms"] <= record["end_to_end"]["max_ms"] * 10
    assert record["cold_start"]["median_ms"] > record["invoke"]["min_ms"]
    assert record["peak_rss_mb"]["classify_process"] > 10
    assert record["time_utc"].endswith("Z") and record["time_utc"][:4].isdigit()
    assert json.loads(recorded.read_text(encoding="utf-8")) == record  # read back as written


def test_a_board_record_replaces_its_estimate_in_the_readme_table(recorded, tmp_path):
    readme = tmp_path / "benchmarks.md"
    shutil.copy(REPO / "docs" / "benchmarks.md", readme)
    before = readme.read_text(encoding="utf-8")
    boards = tmp_path / "boards"
    boards.mkdir()
    shutil.copy(REPO / "reports" / "boards" / "arm64-emulated.json", boards)  # another tool's report: not a row
    assert bench_readme(X86, "--write", "--records", boards, "--readme", readme).returncode == 0
    assert readme.read_text(encoding="utf-8") == before, "the board table of docs/benchmarks.md is stale: run scripts/bench_readme.py"

    # The record a Pi 4 user would commit: this real run's figures under the Pi's device config.
    record = json.loads(recorded.read_text(encoding="utf-8"))
    record.update(device="rpi4", board_name="Raspberry Pi 4")
    (boards / "rpi4.json").write_text(json.dumps(record), encoding="utf-8")
    result = bench_readme(X86, "--write", "--records", boards, "--readme", readme)
    assert result.returncode == 0, result.stderr
    after = readme.read_text(encoding="utf-8")
    old, new = block_of(before, "boards"), block_of(after, "boards")
    assert after == before.replace(old, new), "only the board table changed"
    rows = [line for line in new.splitlines() if line.startswith("| Raspberry Pi 4")]
    assert len(rows) == 1 and "estimate" not in rows[0], rows
    assert f"{record['invoke']['median_ms']:.1f} ms" in rows[0] and f"{record['cold_start']['median_ms']:.0f} ms" in rows[0]
    assert record["system"]["cpu"] in rows[0] and SHIPPED["sha256"][:12] in rows[0] and "`" + str(boards / "rpi4.json") in rows[0]
    assert "| Raspberry Pi 4, CPU | **estimate" in old
    # still no Coral record, and the shipped 16x8 model cannot run on an Edge TPU: the row says so instead of guessing
    assert "| Coral USB Accelerator (Edge TPU) | **no estimate**" in new and "needs uint8 input" in new
    assert "--device coral-usb`) replaces it" in new

    record["model"]["sha256"] = "0" * 64  # a record of another model says so
    (boards / "rpi4.json").write_text(json.dumps(record), encoding="utf-8")
    assert bench_readme(X86, "--write", "--records", boards, "--readme", readme).returncode == 0
    assert "0000000000 (**not the shipped model**)" in block_of(readme.read_text(encoding="utf-8"), "boards")


def test_the_committed_readme_table_is_made_from_the_committed_records():
    result = bench_readme(X86)
    assert result.returncode == 0, result.stderr
    readme = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert block_of(readme, "boards") in result.stdout, "run: python scripts/bench_readme.py reports/bench/x86.json --write"


def _without(record: dict, path: str) -> dict:
    *parents, last = path.split(".")
    inner = record
    for key in parents:
        inner = inner[key]
    del inner[last]
    return record


BAD = {
    "not JSON": (lambda r: "{not json", "not JSON"),
    "a list": (lambda r: [r], "not an edge-bench record"),
    "another tool": (lambda r: {**r, "tool": "scripts/kernel_cost.py"}, "not an edge-bench record (tool is 'scripts/kernel_cost.py')"),
    "another format": (lambda r: {**r, "format": 99}, "record format 99"),
    "no invoke median": (lambda r: _without(r, "invoke.median_ms"), "invoke.median_ms missing"),
    "no cold start": (lambda r: {**r, "cold_start": None}, "cold_start.median_ms missing"),
    "cores as text": (lambda r: {**r, "system": {**r["system"], "cores": "4"}}, "system.cores is str"),
    "kernels as a flag": (lambda r: {**r, "kernels": True}, "kernels is bool"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_record_is_a_clear_error_naming_the_file_and_the_field(recorded, tmp_path, case):
    change, words = BAD[case]
    bad = change(json.loads(recorded.read_text(encoding="utf-8")))
    path = tmp_path / "boards" / "rpi4.json"
    path.parent.mkdir()
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad), encoding="utf-8")
    if case == "another tool":  # in a records folder, another tool's report is skipped, not an error
        assert bench_readme(X86, "--records", path.parent).returncode == 0
    else:
        result = bench_readme(X86, "--records", path.parent)
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [result.stderr.strip()] and str(path) in result.stderr
        assert words in result.stderr, result.stderr
    with pytest.raises(EdgeError, match=str(path)) as error:
        bench.read_record(path)
    assert words in str(error.value)


def test_a_missing_record_is_a_clear_error(tmp_path):
    with pytest.raises(EdgeError, match="no such record"):
        bench.read_record(tmp_path / "rpi4.json")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--cold-runs", "0"], "--record needs the cold-start runs"),
        (["--model", "{bare}"], "--record needs a model with its manifest"),
        (["--record-to", "no/such/folder/rpi4.json"], "no folder"),
        (["--record-to", "rpi4.txt"], "a record is a .json file"),
        (["--device", "rpi4"], "measure a board record on that board"),
    ],
)
def test_a_record_that_could_not_be_a_board_figure_is_refused_before_timing(tmp_path, args, words):
    if args[:2] == ["--device", "rpi4"] and board_mismatch(load_device("rpi4")) is None:
        pytest.skip("this machine is a Raspberry Pi 4")
    bare = tmp_path / "bare.tflite"  # the packaged model without its manifest, as the reference models are
    shutil.copy(REPO / "edge" / "models" / "model.tflite", bare)
    target = tmp_path / "rpi4.json"
    if args[0] == "--record-to":
        target, args = tmp_path / args[1], []
    args = [a.replace("{bare}", str(bare)) for a in args]
    result = run("edge-bench", *args, "--runs", "2", "--warmup", "0", "--record", target, timeout=60)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.stderr
    assert not target.exists()
