"""edge-bench: the record, its statistics, warm-up accounting, --compare ratios, and its errors.

A real LiteRT interpreter on the tiny contract model (converted by convert.quantize), a real
edge-classify process for the cold start. No test asserts a speed: this machine is shared.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from commands import run
from edge.inference import bench
from edge.inference.classifier import Classifier

STAT_FIELDS = {"count", "min_ms", "median_ms", "mean_ms", "p90_ms", "p99_ms", "max_ms", "std_ms"}


def assert_ordered(stats: dict, count: int) -> None:
    assert set(stats) == STAT_FIELDS
    assert stats["count"] == count
    assert 0 <= stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["min_ms"] <= stats["mean_ms"] <= stats["max_ms"]
    assert stats["std_ms"] >= 0


class CountingInterpreter:
    """A real interpreter that counts its invoke() calls."""

    def __init__(self, interpreter):
        self._interpreter = interpreter
        self.invokes = 0

    def invoke(self):
        self.invokes += 1
        self._interpreter.invoke()

    def __getattr__(self, name):
        return getattr(self._interpreter, name)


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    """The tiny model with its manifest, and two bare copies without one (like the reference)."""
    folder = tmp_path_factory.mktemp("bench_models")
    main = tiny_model_dir / "model.tflite"
    other_a, other_b = folder / "a.tflite", folder / "b.tflite"
    shutil.copy(main, other_a)
    shutil.copy(main, other_b)
    return main, other_a, other_b


def settings_for(model: Path, **changes) -> bench.Settings:
    values = dict(
        model=model, device="x86", device_description="test", threads=1, delegate="", runtime="auto",
        runs=12, warmup=3, cold_runs=0,
        make_classifier=lambda: Classifier(model, threads=1),
    )
    values.update(changes)
    return bench.Settings(**values)


@pytest.fixture(scope="module")
def record(models):
    main, other_a, other_b = models
    result = bench.run_benchmark(settings_for(main, runs=15, cold_runs=2, compare=[other_a, other_b]))
    return json.loads(json.dumps(result))  # what --json prints


def test_record_has_every_field_and_names_the_machine(record, models):
    for key in ("system", "load_average", "runtime", "threads", "delegate", "device", "runs", "warmup", "image", "model",
                "load_ms", "first_inference_ms", "invoke", "end_to_end", "end_to_end_stages",
                "end_to_end_over_invoke", "cold_start", "cold_start_command", "peak_rss_mb", "compare"):
        assert key in record, key
    assert record["system"]["cpu"] and record["system"]["cores"] >= 1
    assert record["runtime"].startswith(("ai-edge-litert", "tflite-runtime"))
    assert record["model"]["sha256"] == json.loads((models[0].with_suffix(".json")).read_text())["sha256"]
    assert record["image"]["source"] == "synthetic" and record["image"]["shape"] == [1024, 1024]
    assert record["load_ms"] > 0 and record["first_inference_ms"] > 0
    assert set(record["end_to_end_stages"]) == {"decode", "check", "prepare", "run", "postprocess"}
    assert record["peak_rss_mb"]["classify_process"] > 0 and record["peak_rss_mb"]["bench_process"] > 0
    assert "edge-classify" in " ".join(record["cold_start_command"]) or "edge.cli.classify" in " ".join(record["cold_start_command"])
    table = bench.format_table(record)
    assert record["system"]["cpu"] in table and "invoke (bare)" in table and "cold start" in table


def test_statistics_are_ordered_and_counted(record):
    assert_ordered(record["invoke"], 15)
    assert_ordered(record["end_to_end"], 15)
    for stats in record["end_to_end_stages"].values():
        assert_ordered(stats, 15)
    assert_ordered(record["cold_start"], 2)
    assert_ordered(record["cold_start_cpu"], 2)
    for other in record["compare"]:
        assert_ordered(other["invoke"], 15)
    # the whole path cannot be quicker than its own stages
    stages = record["end_to_end_stages"]
    assert record["end_to_end"]["median_ms"] >= 0.9 * stages["prepare"]["median_ms"]


def test_summarize_known_values():
    stats = bench.summarize([t / 1000 for t in range(1, 101)])  # 1..100 ms
    assert (stats.count, stats.min_ms, stats.max_ms) == (100, 1.0, 100.0)
    assert stats.median_ms == pytest.approx(50.5) and stats.mean_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1) and stats.p99_ms == pytest.approx(99.01)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101)), abs=1e-3)


def test_warmup_runs_are_not_counted(models, monkeypatch):
    """Every interpreter is invoked warmup + runs times; the record counts only the runs."""
    main, other_a, _ = models
    made: list[CountingInterpreter] = []
    real = bench.make_interpreter

    def counting(*args, **kwargs):
        made.append(CountingInterpreter(real(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(bench, "make_interpreter", counting)
    result = bench.run_benchmark(settings_for(main, runs=9, warmup=4, compare=[other_a], make_classifier=None))
    assert [m.invokes for m in made] == [13, 13]
    assert result["invoke"]["count"] == 9 and result["compare"][0]["invoke"]["count"] == 9
    assert result["warmup_invoke"]["count"] == 4


def test_interleave_runs_round_robin_and_rotates():
    calls: list[str] = []
    tasks = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timings = bench.interleave(tasks, runs=3, warmup=2)
    assert calls[:6] == list("abcabc")  # warm-up
    assert calls[6:] == list("abc" "bca" "cab")  # each round starts one later
    assert all(len(t.runs) == 3 and len(t.warmup) == 2 for t in timings.values())


def test_compare_ratios_are_each_model_against_the_main_one(record):
    main_median = record["invoke"]["median_ms"]
    assert len(record["compare"]) == 2
    for other in record["compare"]:
        assert other["ratio"] == pytest.approx(other["invoke"]["median_ms"] / main_median, rel=1e-3)
        assert other["paired_ratio_median"] > 0
        assert other["model"]["manifest"] is False and other["model"]["inputs"][0]["dtype"] == "uint8"
    assert record["interleaved"] == ["invoke", "compare0", "compare1", "end_to_end"] and record["schedule"] == "interleaved"


def test_cli_compare_takes_several_files_after_one_option(models):
    main, other_a, other_b = models
    result = run("edge-bench", "--model", main, "--runs", "5", "--warmup", "1", "--cold-runs", "0", "--json",
                 "--compare", other_a, other_b, "--threads", "1")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert [c["model"]["path"] for c in record["compare"]] == [str(other_a), str(other_b)]
    assert record["threads"] == 1 and record["invoke"]["count"] == 5


def test_cold_start_memory_is_the_child_s_own(tmp_path):
    """A child forked straight from a big process would report that process's peak RSS."""
    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # this process: over 400 MB resident
    (run,) = bench.cold_starts([sys.executable, "-c", "print('{}')"], 1)
    assert run.returncode == 0 and run.first_line == "{}"
    assert run.peak_rss_kb < 200 * 1024 < ballast.sum() / 1024


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "/no/such/model.tflite"], "model file not found"),
        (["--compare", "/no/such/other.tflite"], "model file not found"),
        (["--device", "no-such-board"], "unknown device"),
    ],
)
def test_setup_errors_are_one_clear_line_and_exit_2(models, args, words):
    if args[0] == "--compare" or args[0] == "--device":
        args = ["--model", str(models[0]), *args]
    result = run("edge-bench", *args, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_sequential_schedule_runs_each_task_in_one_block():
    calls: list[str] = []
    tasks = {name: (lambda name=name: calls.append(name)) for name in "ab"}
    timings = bench.interleave(tasks, runs=3, warmup=1, sequential=True)
    assert calls == list("aaaa" "bbbb")
    assert all(len(t.runs) == 3 and len(t.warmup) == 1 for t in timings.values())


def test_help_lists_every_option_and_bad_values_are_usage_errors():
    result = run("edge-bench", "--help")
    assert result.returncode == 0
    for option in ("--model", "--device", "--config", "--threads", "--runs", "--warmup", "--cold-runs", "--image",
                   "--compare", "--json", "--out", "--record", "--schedule"):
        assert option in result.stdout, option
    for args in (["--runs", "0"], ["--threads", "two"], ["--schedule", "random"], ["--device", "rpi4", "--config", "x.toml"]):
        result = run("edge-bench", *args, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == "", args


def test_an_edge_tpu_board_without_a_compiled_model_is_the_same_clear_error_as_in_edge_classify(mias_dir):
    """Coral configs pick model_edgetpu.tflite, which only edgetpu_compiler makes: both commands say so alike."""
    from classify_support import run_classify

    bench_result = run("edge-bench", "--device", "coral-usb", timeout=60)
    classify_result = run_classify(str(mias_dir / "mdb005.png"), "--device", "coral-usb")
    for result in (bench_result, classify_result):
        assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no packaged model model_edgetpu.tflite for device 'coral-usb'" in bench_result.stderr
    assert bench_result.stderr.strip() == classify_result.stderr.strip()


def test_a_pi_config_on_another_machine_says_so_in_one_line(models):
    from edge.inference.device import board_mismatch, load_device

    expected = board_mismatch(load_device("rpi4"))
    if expected is None:
        pytest.skip("this machine is a Raspberry Pi 4")
    result = run("edge-bench", "--device", "rpi4", "--model", str(models[0]), "--runs", "2", "--warmup", "0",
                 "--cold-runs", "0", timeout=120)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("note:")] == [expected]
