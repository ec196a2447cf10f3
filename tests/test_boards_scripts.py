"""The board scripts' own logic: the arm64 report's comparison and the kernel-cost record."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _record(name: str, calc: float, **extra) -> dict:
    return {"file": f"/somewhere/{name}", "label": "CALC", "probabilities": {"CALC": calc, "NORM": 1 - calc},
            "malignant": 0.1, "model": "ab" * 32, **extra}


def test_answers_are_compared_by_file_name_field_by_field(tmp_path):
    report = _script("arm64_report")
    x86 = {"mdb001.png": _record("mdb001.png", 0.5), "mdb002.png": _record("mdb002.png", 0.25)}
    same = report.compare(x86, {n: {**r, "file": f"/opt/{n}"} for n, r in x86.items()})
    assert same["records_identical"] and same["probabilities_identical"] and same["largest_probability_difference"] == 0

    other = dict(x86, **{"mdb002.png": _record("mdb002.png", 0.2656)})
    result = report.compare(x86, other)
    assert not result["records_identical"] and result["scans_with_other_probabilities"] == ["mdb002.png"]
    assert result["largest_probability_difference"] == 0.0156

    malignant_only = dict(x86, **{"mdb001.png": {**x86["mdb001.png"], "malignant": 0.11}})
    result = report.compare(x86, malignant_only)
    assert result["probabilities_identical"] and not result["records_identical"]

    crashed = report.compare(x86, {})  # edge-classify died before printing anything
    assert not crashed["same_scans"] and not crashed["records_identical"]


def test_reading_edge_classify_lines(tmp_path):
    report = _script("arm64_report")
    lines = tmp_path / "out.jsonl"
    lines.write_text(json.dumps(_record("mdb003.png", 0.5)) + "\n\n" + json.dumps({"file": "x/mdb004.png", "error": "bad"}) + "\n")
    records = report.read_lines(lines)
    assert sorted(records) == ["mdb003.png", "mdb004.png"]
    assert report.compare({"mdb004.png": _record("mdb004.png", 0.5)}, records)["errors"] == ["mdb004.png"]


def test_kernel_cost_times_every_kernel_choice_in_one_loop():
    cost = _script("kernel_cost")
    model = REPO / "edge" / "models" / "model.tflite"
    # the compared model under fewer kernels (MobileNetV2's int8 graph aborts under the reference ones)
    record = cost.measure([model, model], threads=1, runtime="auto", runs=3, warmup=1, compare_set=("builtin", "default"))
    assert record["kernels"] == ["builtin", "reference", "default"]
    row, compared = record["models"]
    assert set(row["invoke"]) == {"builtin", "reference", "default"} and set(compared["invoke"]) == {"builtin", "default"}
    assert all(r["invoke"][k]["count"] == 3 for r in (row, compared) for k in r["invoke"])
    assert row["over_builtin"]["builtin"] == 1.0
    assert record["system"]["cpu"] and record["runtime"].startswith(("ai-edge-litert", "tflite-runtime"))
    table = cost.table(record)
    assert "builtin" in table and "reference" in table and table.splitlines()[-1].split()[-1] != "-"
    assert table.splitlines()[-1].split().count("-") == 1  # the compared row has no reference time
    assert cost.main(["--kernels", "fast", "--runs", "1"]) == 2
