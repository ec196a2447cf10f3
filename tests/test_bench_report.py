"""The committed benchmark figures: a complete record for this machine, and docs/benchmarks.md copies it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "reports" / "bench" / "x86.json"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_readme", REPO / "scripts" / "bench_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_record_compares_our_model_with_float_and_mobilenet():
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    assert record["system"]["cpu"] and record["system"]["cores"] >= 1
    assert record["schedule"] == "interleaved" and record["runs"] >= 100
    assert record["model"]["manifest"] and record["model"]["inputs"][0]["dtype"] == "int16"  # 16x8
    names = sorted(Path(c["model"]["path"]).name for c in record["compare"])
    assert names == ["mobilenetv2_int8.tflite", "model_float.tflite"]
    for other in record["compare"]:
        assert abs(other["ratio"] - other["invoke"]["median_ms"] / record["invoke"]["median_ms"]) < 1e-3
    assert record["end_to_end"] and record["cold_start"] and record["peak_rss_mb"]["classify_process"]
    shipped = json.loads((REPO / "edge" / "models" / "model.json").read_text(encoding="utf-8"))
    assert record["model"]["sha256"] == shipped["sha256"], "re-run the benchmark for the shipped model"


def test_the_footing_record_times_the_shipped_model_and_mobilenet_under_every_kernel_choice():
    """The speed budget and the board estimates are read from it, on MobileNetV2's published footing."""
    script = load_script()
    record = json.loads((REPO / script.FOOTING).read_text(encoding="utf-8"))
    assert record["tool"] == "scripts/kernel_cost.py" and record["threads"] == 2 and record["runs"] >= 100
    assert set(record["kernels"]) == {"builtin", "reference", "default"}
    shipped = json.loads((REPO / "edge" / "models" / "model.json").read_text(encoding="utf-8"))["sha256"]
    speeds = script.footing(shipped)
    assert set(speeds["ours"]) == set(record["kernels"])  # every kernel choice a board config may ask for
    assert set(speeds["mobilenet"]) == {"builtin", "default"}  # its int8 graph aborts under the reference kernels
    assert speeds["mobilenet"]["default"] < speeds["mobilenet"]["builtin"]  # XNNPACK: the published footing is the fast one


def test_readme_figures_are_copied_from_the_record():
    script = load_script()
    shipped = json.loads((REPO / "edge" / "models" / "model.json").read_text(encoding="utf-8"))["sha256"]
    expected = script.block(json.loads(RECORD.read_text(encoding="utf-8")), "reports/bench/x86.json", script.footing(shipped))
    readme = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    start, end = readme.index(script.BEGIN), readme.index(script.END) + len(script.END)
    assert readme[start:end] == expected, "run: python scripts/bench_readme.py reports/bench/x86.json --write"
