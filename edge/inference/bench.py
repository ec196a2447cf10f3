"""Latency and memory of a model on this board, measured the way TFLite's `benchmark_model` does.

Conventions, and why:
- Warm-up runs are not counted: the first invokes pay for page faults, kernel preparation and
  cache misses that a centre running a batch pays once. The very first one is reported on its
  own as "first inference", as `benchmark_model` does.
- Everything compared is measured in one loop, round-robin (each round runs every task once,
  starting at a different task each round). Shared or throttling machines drift over seconds;
  interleaving puts every task under the same drift, so ratios hold even where absolute
  times do not. Medians, not means, are the headline: one preempted run moves a mean.
- Bare invoke times feed random input of the model's own input dtype and shape: int8 CPU
  kernels take the same time whatever the values, and it lets any `.tflite` (one without a
  manifest, such as the MobileNetV2 reference) be timed the same way.
- End to end per scan is what a health worker waits for after the process is up: decode the
  file, check it is a mammogram, prepare, invoke, postprocess and heat-map, through the
  runner's own `Classifier`.
- Cold start is a fresh `edge-classify --json IMAGE` process, from launch to its first JSON
  line: interpreter import, model load and verification, one scan. Its peak resident memory
  comes from the kernel's accounting for that child (`wait4`, `ru_maxrss`).

numpy + the TFLite runtime only, like the rest of `edge`: this runs on the board.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from edge.errors import EdgeError
from edge.fileio import sha256_bytes
from edge.inference.manifest import manifest_path_for
from edge.runtime import make_interpreter, runtime_version

FORMAT = 1
SYNTHETIC_SIDE = 1024


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    """Summary of timed runs, in milliseconds (percentiles by linear interpolation, std of the runs)."""

    count: int
    min_ms: float
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float


def summarize(seconds: Sequence[float]) -> Stats:
    """Stats of a list of durations in seconds."""
    if not len(seconds):
        raise ValueError("no timed runs to summarize")
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, (50, 90, 99))
    return Stats(
        count=int(ms.size),
        min_ms=_r(ms.min()),
        median_ms=_r(p50),
        mean_ms=_r(ms.mean()),
        p90_ms=_r(p90),
        p99_ms=_r(p99),
        max_ms=_r(ms.max()),
        std_ms=_r(ms.std()),
    )


def _r(value: float) -> float:
    return round(float(value), 4)


# ----------------------------------------------------------------------------- timing loop


StageTimes = dict[str, float]
Task = Callable[[], "StageTimes | None"]
"""One unit of work to time. It may return the durations (s) of its own stages, e.g. decode."""


@dataclass
class Timing:
    """The raw durations (s) of one task: the first call, the warm-up calls, the timed calls."""

    first: float = 0.0
    warmup: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)


def interleave(
    tasks: dict[str, Task], runs: int, warmup: int, sequential: bool = False, clock: Callable[[], int] = time.perf_counter_ns
) -> dict[str, Timing]:
    """Run every task `warmup` times (not counted), then `runs` rounds of every task once each.

    Round r starts at task r mod n, so no task always follows the same neighbour. The first
    call of each task is kept as its "first inference" (it is also the first warm-up call, or
    the first timed run when there is no warm-up, as in `benchmark_model`).
    `sequential` runs each task's warm-up and runs in one block instead, one task after the
    other: an Edge TPU keeps one model's parameters on chip, and alternating models would make
    every invoke reload them over USB.
    """
    if runs < 1:
        raise EdgeError("--runs must be at least 1")
    if warmup < 0:
        raise EdgeError("--warmup cannot be negative")
    names = list(tasks)
    timings = {name: Timing() for name in names}
    started: set[str] = set()

    def call(name: str) -> tuple[float, StageTimes | None]:
        begin = clock()
        stages = tasks[name]()
        elapsed = (clock() - begin) / 1e9
        if name not in started:
            started.add(name)
            timings[name].first = elapsed
        return elapsed, stages

    if sequential:
        for name in names:
            timings.update(interleave({name: tasks[name]}, runs, warmup, clock=clock))
        return timings
    for _ in range(warmup):
        for name in names:
            timings[name].warmup.append(call(name)[0])
    for round_index in range(runs):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed, stages = call(name)
            timings[name].runs.append(elapsed)
            for stage, seconds in (stages or {}).items():
                timings[name].stages.setdefault(stage, []).append(seconds)
    return timings


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelInfo:
    path: str
    sha256: str
    size_bytes: int
    inputs: list[dict[str, Any]]
    load_ms: float
    manifest: bool


def load_bare(
    path: str | Path, threads: int, delegate: str = "", runtime: str = "auto", kernels: str = "builtin"
) -> tuple[Any, ModelInfo]:
    """An allocated interpreter for any `.tflite` file, and what it is (load = read + build + allocate)."""
    path = Path(path)
    begin = time.perf_counter()
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise EdgeError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise EdgeError(f"{path}: is a directory, not a .tflite model") from None
    except OSError as exc:
        raise EdgeError(f"{path}: model file cannot be read ({exc.strerror})") from None
    interpreter = make_interpreter(content, threads=threads, delegate=delegate, runtime=runtime, kernels=kernels)
    load = time.perf_counter() - begin
    inputs = [
        {"shape": [int(n) for n in d["shape"]], "dtype": np.dtype(d["dtype"]).name} for d in interpreter.get_input_details()
    ]
    info = ModelInfo(_shown(path), sha256_bytes(content), len(content), inputs, _r(load * 1000), manifest_path_for(path).is_file())
    return interpreter, info


def _shown(path: Path) -> str:
    """A path as the record shows it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def random_inputs(interpreter: Any, seed: int = 0) -> None:
    """Fill every input tensor with random values of its own dtype and shape."""
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        shape = tuple(int(n) for n in detail["shape"])
        if np.issubdtype(dtype, np.integer):
            limits = np.iinfo(dtype)
            value = rng.integers(limits.min, int(limits.max) + 1, size=shape, dtype=dtype)
        elif dtype == np.bool_:
            value = rng.integers(0, 2, size=shape).astype(bool)
        else:
            value = rng.random(size=shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)


def invoke_task(interpreter: Any, seed: int = 0) -> Task:
    """The bare `invoke()` of an interpreter whose inputs were set once, as `benchmark_model` times it."""
    random_inputs(interpreter, seed)
    invoke = interpreter.invoke

    def task() -> None:
        invoke()

    return task


# ----------------------------------------------------------------------------- scans


def synthetic_scan(side: int = SYNTHETIC_SIDE, seed: int = 0) -> np.ndarray:
    """A mammogram-like 8-bit scan made in memory: dark film, a bright half-disc breast against
    the left edge with texture and a few dense spots, and a film label in a corner. It makes the
    preprocessing do the same work as on a MIAS scan; its content means nothing."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32)
    radius = np.hypot((rows - side * 0.5) / (side * 0.42), cols / (side * 0.38))
    breast = np.clip(1.0 - radius, 0, None) ** 0.35
    image = 20 + 170 * breast + rng.normal(0, 12, (side, side)) * (breast > 0)
    for _ in range(5):
        r, c = rng.uniform(0.3, 0.7) * side, rng.uniform(0.05, 0.3) * side
        image += 40 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * (side * 0.02) ** 2))
    image[int(side * 0.05) : int(side * 0.12), int(side * 0.75) : int(side * 0.92)] = 235  # film label
    image += rng.normal(0, 3, (side, side))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_pgm(scan: np.ndarray, folder: str | Path) -> Path:
    path = Path(folder) / "synthetic_scan.pgm"
    Image.fromarray(scan, mode="L").save(path)
    return path


# ----------------------------------------------------------------------------- end to end


def end_to_end_task(classifier: Any, image: Path) -> Task:
    """One scan through the runner as `edge-classify --json` does it, each step timed as a stage:
    decode the file, check it is a mammogram (edge.scan.plausibility), prepare, run (set input +
    invoke + read outputs), postprocess (dequantize, triage, heat-map and its peak on the scan,
    the JSON-ready record)."""
    from edge.scan.decode import read_scan
    from edge.scan.plausibility import problem

    clock = time.perf_counter

    def task() -> StageTimes:
        t0 = clock()
        scan = read_scan(image)
        t1 = clock()
        problem(scan)
        checked = clock()
        prepared = classifier.prepare(scan)
        t2 = clock()
        raw = classifier.run(prepared.image)
        t3 = clock()
        classifier.postprocess(raw, prepared).to_record()
        t4 = clock()
        return {"decode": t1 - t0, "check": checked - t1, "prepare": t2 - checked, "run": t3 - t2, "postprocess": t4 - t3}

    return task


# ----------------------------------------------------------------------------- cold start


def classify_command() -> list[str]:
    """How to launch `edge-classify` without shell shims in the way: the script installed beside
    this Python, else the one on PATH, else this Python running the entry point."""
    beside = Path(sys.executable).with_name("edge-classify")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-c", "from edge.cli.classify import main; main()"]


@dataclass(frozen=True)
class ColdRun:
    seconds: float  # launch to the first line on stdout
    exit_seconds: float  # launch to exit
    peak_rss_kb: int
    cpu_seconds: float  # user + system CPU time of the child, all threads: its cost, whatever else runs
    returncode: int
    first_line: str
    stderr: str


_LAUNCHER = r"""
import json, os, subprocess, sys, tempfile, time
command, count = json.loads(sys.argv[1]), int(sys.argv[2])
runs = []
for _ in range(count):
    with tempfile.TemporaryFile("w+") as errors:
        begin = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        first_line = process.stdout.readline()
        first = time.perf_counter() - begin
        process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        done = time.perf_counter() - begin
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        runs.append(dict(seconds=first, exit_seconds=done, peak_rss_kb=usage.ru_maxrss,
                         cpu_seconds=usage.ru_utime + usage.ru_stime,
                         returncode=process.returncode, first_line=first_line.strip(), stderr=errors.read().strip()))
print(json.dumps(runs))
"""


def cold_starts(command: Sequence[str], count: int, timeout: float = 600.0) -> list[ColdRun]:
    """Launch `command` `count` times, one after another, each timed from launch to its first
    stdout line and to its exit, with its own peak resident memory.

    The launches come from a small helper Python process, not from this one: Linux carries a
    process's peak RSS across fork and exec, so a child forked straight from this benchmark
    (which holds several models) would report this process's peak, not its own.
    """
    try:
        helper = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, json.dumps(list(command)), str(count)],
            capture_output=True, text=True, timeout=timeout, env=_quiet_env(),
        )
    except subprocess.TimeoutExpired:
        raise EdgeError(f"cold-start runs took over {timeout:.0f} s; is edge-classify hanging?") from None
    if helper.returncode != 0:
        raise EdgeError(f"cold-start launcher failed: {helper.stderr.strip().splitlines()[-1:]}")
    return [ColdRun(**run) for run in json.loads(helper.stdout)]


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def peak_rss_mb_self() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _r(value / (1 << 20) if sys.platform == "darwin" else value / 1024)


# ----------------------------------------------------------------------------- the system


def describe_system() -> dict[str, Any]:
    """What this board is: the CPU model and core count, the OS, Python."""
    return {
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "board": board_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: a busy machine's figures are noisy (None where unknown)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo ("model name", or "Model"/"Hardware" on ARM boards)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if fields.get("model name"):
        return fields["model name"]
    implementer, part = fields.get("CPU implementer"), fields.get("CPU part")
    if implementer == "0x41":  # ARM Ltd (64-bit Raspberry Pi OS gives no model name): the usual board cores
        names = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}
        return f"ARM {names.get(part or '', 'part ' + str(part))}"
    for key in ("Hardware", "cpu model", "Processor", "Model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


def board_model() -> str:
    """The board's own name where the firmware gives one (a Raspberry Pi does), else ''."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return Path(path).read_text(errors="replace").strip("\x00 \n")
        except OSError:
            continue
    return ""


# ----------------------------------------------------------------------------- the whole benchmark


@dataclass
class Settings:
    model: Path
    device: str
    device_description: str
    threads: int
    delegate: str
    runtime: str
    runs: int = 100
    warmup: int = 10
    cold_runs: int = 5
    image: Path | None = None
    compare: list[Path] = field(default_factory=list)
    classify_args: list[str] = field(default_factory=list)  # device options passed on to edge-classify
    make_classifier: Callable[[], Any] | None = None
    schedule: str = "auto"  # interleaved, sequential, or auto: sequential with a delegate (Edge TPU), else interleaved
    kernels: str = "builtin"  # edge.runtime.KERNELS: builtin (what every device config runs) or the runtime's default
    board_name: str = ""  # the board the device config is for ("Raspberry Pi 4"), else its description


def run_benchmark(settings: Settings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every measurement of one `edge-bench` run, as the JSON-ready record."""
    load_before = _load_average()
    interpreter, main_info = load_bare(settings.model, settings.threads, settings.delegate, settings.runtime, settings.kernels)
    others = [load_bare(path, settings.threads, settings.delegate, settings.runtime, settings.kernels) for path in settings.compare]

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as folder:
        if settings.image is None:
            image, image_record = write_pgm(synthetic_scan(), folder), {
                "source": "synthetic",
                "note": f"no --image given: a synthetic {SYNTHETIC_SIDE}x{SYNTHETIC_SIDE} uint8 scan made in memory",
            }
        else:
            image, image_record = settings.image, {"source": _shown(Path(settings.image))}
        from edge.scan.decode import read_scan

        scan = read_scan(image)
        image_record.update(shape=list(scan.shape), dtype=scan.dtype.name)

        tasks: dict[str, Task] = {"invoke": invoke_task(interpreter)}
        for index, (other, _) in enumerate(others):
            tasks[f"compare{index}"] = invoke_task(other, seed=index + 1)
        classifier_ms = None
        if settings.make_classifier is not None and main_info.manifest:
            begin = time.perf_counter()
            classifier = settings.make_classifier()
            classifier_ms = _r((time.perf_counter() - begin) * 1000)
            tasks["end_to_end"] = end_to_end_task(classifier, image)

        schedule = settings.schedule
        if schedule == "auto":
            schedule = "sequential" if settings.delegate else "interleaved"
        if schedule not in ("interleaved", "sequential"):
            raise EdgeError(f"unknown schedule {schedule!r}; use auto, interleaved or sequential")
        progress(f"timing {', '.join(tasks)}: {settings.warmup} warm-up + {settings.runs} runs, {schedule}")
        timings = interleave(tasks, settings.runs, settings.warmup, sequential=schedule == "sequential")

        colds: list[ColdRun] = []
        command: list[str] = []
        if settings.cold_runs > 0 and main_info.manifest:
            command = classify_command() + ["--json", "--model", str(settings.model), *settings.classify_args, str(image)]
            progress(f"cold start: {settings.cold_runs} x {' '.join(command)}")
            colds = cold_starts(command, settings.cold_runs)
            for run in colds:
                if run.returncode != 0 or not run.first_line.startswith("{") or '"error"' in run.first_line:
                    raise EdgeError(f"edge-classify failed during the cold-start runs: {run.first_line or run.stderr}")

    main = timings["invoke"]
    record: dict[str, Any] = {
        "format": FORMAT,
        "tool": "edge-bench",
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "system": describe_system(),
        "load_average": {"before": load_before, "after": _load_average()},
        "device": settings.device,
        "device_description": settings.device_description,
        "board_name": settings.board_name or settings.device_description,
        "runtime": runtime_version(settings.runtime),
        "threads": settings.threads,
        "delegate": settings.delegate,
        "kernels": settings.kernels,
        "runs": settings.runs,
        "warmup": settings.warmup,
        "schedule": schedule,
        "interleaved": list(tasks) if schedule == "interleaved" else [],
        "tasks": list(tasks),
        "image": image_record,
        "model": asdict(main_info),
        "load_ms": main_info.load_ms,
        "first_inference_ms": _r(main.first * 1000),
        "invoke": asdict(summarize(main.runs)),
        "warmup_invoke": asdict(summarize(main.warmup)) if main.warmup else None,
        "classifier_init_ms": classifier_ms,
        "end_to_end": None,
        "end_to_end_stages": None,
        "end_to_end_over_invoke": None,
        "cold_start": None,
        "cold_start_to_exit": None,
        "cold_start_cpu": None,
        "cold_start_command": command or None,
        "peak_rss_mb": {
            "classify_process": _r(max(run.peak_rss_kb for run in colds) / 1024) if colds else None,
            "bench_process": peak_rss_mb_self(),
        },
        "compare": [],
    }
    if "end_to_end" in timings:
        e2e = timings["end_to_end"]
        record["end_to_end"] = asdict(summarize(e2e.runs))
        record["end_to_end_stages"] = {stage: asdict(summarize(times)) for stage, times in e2e.stages.items()}
        record["end_to_end_over_invoke"] = _r(record["end_to_end"]["median_ms"] / record["invoke"]["median_ms"])
    if colds:
        record["cold_start"] = asdict(summarize([run.seconds for run in colds]))
        record["cold_start_to_exit"] = asdict(summarize([run.exit_seconds for run in colds]))
        record["cold_start_cpu"] = asdict(summarize([run.cpu_seconds for run in colds]))
    main_median = record["invoke"]["median_ms"]
    for index, (_, info) in enumerate(others):
        timing = timings[f"compare{index}"]
        stats = asdict(summarize(timing.runs))
        paired = np.median(np.asarray(timing.runs) / np.asarray(main.runs))
        record["compare"].append(
            {
                "model": asdict(info),
                "load_ms": info.load_ms,
                "first_inference_ms": _r(timing.first * 1000),
                "invoke": stats,
                "ratio": _r(stats["median_ms"] / main_median),
                "paired_ratio_median": _r(paired),
            }
        )
    return record


# ----------------------------------------------------------------------------- board records

RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "time_utc": str,
    "device": str,
    "system.cpu": str,
    "system.cores": int,
    "system.machine": str,
    "runtime": str,
    "threads": int,
    "delegate": str,
    "kernels": str,
    "model.sha256": str,
    "invoke.median_ms": (int, float),
    "end_to_end.median_ms": (int, float),
    "cold_start.median_ms": (int, float),
    "peak_rss_mb.classify_process": (int, float),
}
"""What a committed board figure must hold (`edge-bench --record`; the board table of docs/benchmarks.md reads it)."""


def check_record(record: Any, where: str) -> dict[str, Any]:
    """`record` if it is a complete edge-bench board record, else an EdgeError naming `where` and
    every field that is missing or of the wrong type."""
    if not isinstance(record, dict):
        raise EdgeError(f"{where}: not an edge-bench record (a JSON object was expected)")
    if record.get("tool") != "edge-bench":
        raise EdgeError(f"{where}: not an edge-bench record (tool is {record.get('tool')!r})")
    if record.get("format") != FORMAT:
        raise EdgeError(f"{where}: edge-bench record format {record.get('format')!r}, this edge-bench reads format {FORMAT}")
    problems = []
    for path, kind in RECORD_FIELDS.items():
        value: Any = record
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            problems.append(f"{path} missing")
        elif not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"{path} is {type(value).__name__}")
    if problems:
        raise EdgeError(f"{where}: incomplete edge-bench record ({', '.join(problems)}); record it again with edge-bench --record")
    return record


def read_record(path: str | Path) -> dict[str, Any]:
    """A committed board record, checked (`check_record`); a record made before records named
    their board gets the device's description as its board name."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such record") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise EdgeError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    check_record(record, str(path))
    record.setdefault("board_name", record.get("device_description") or record["device"])
    return record


# ----------------------------------------------------------------------------- the readable table


def format_table(record: dict[str, Any]) -> str:
    """The record as a table for a person at the board."""
    system, model = record["system"], record["model"]
    shape = " ".join("x".join(map(str, i["shape"])) + " " + i["dtype"] for i in model["inputs"])
    lines = [
        "edge-bench: model latency on this board (research software, not a medical device)",
        f"board     {system['board'] or '-'}",
        f"CPU       {system['cpu']}, {system['cores']} cores, {system['machine']}, {system['os']}"
        + (f"; load average {record['load_average']['before'][0]:.1f} before, {record['load_average']['after'][0]:.1f} after"
           if record["load_average"]["before"] and record["load_average"]["after"] else ""),
        f"device    {record['device']} ({record['device_description']})",
        f"runtime   {record['runtime']}, {record['threads']} threads, delegate: {record['delegate'] or 'none (CPU)'}"
        + (f", kernels: {record['kernels']}" if record.get("kernels") else ""),
        f"model     {model['path']} ({model['size_bytes'] / 1e6:.2f} MB, sha256 {model['sha256'][:12]}..., input {shape})",
        f"image     {record['image'].get('note') or record['image']['source']}",
        f"runs      {record['warmup']} warm-up (not counted), then {record['runs']} timed, "
        + ("interleaved round-robin: " if record["schedule"] == "interleaved" else "one task after the other: ")
        + ", ".join(record["tasks"]),
        "",
        f"model load {record['load_ms']:.1f} ms; first inference {record['first_inference_ms']:.2f} ms"
        + (
            f"; Classifier (manifest, sha256 check, interpreter) {record['classifier_init_ms']:.1f} ms"
            if record["classifier_init_ms"] is not None
            else ""
        ),
        "",
        f"{'ms':<28}{'count':>6}{'min':>9}{'median':>9}{'mean':>9}{'p90':>9}{'p99':>9}{'max':>9}{'std':>8}",
        _row("invoke (bare)", record["invoke"]),
    ]
    if record["end_to_end"]:
        lines.append(_row("end to end per scan", record["end_to_end"]))
        for stage, stats in record["end_to_end_stages"].items():
            lines.append(_row(f"  {stage}", stats))
    if record["cold_start"]:
        lines.append(_row("cold start, first result", record["cold_start"]))
        lines.append(_row("cold start, process exit", record["cold_start_to_exit"]))
        lines.append(_row("cold start, its CPU time", record["cold_start_cpu"]))
    lines.append("")
    if record["end_to_end_over_invoke"] is not None:
        lines.append(f"end to end / bare invoke (medians): {record['end_to_end_over_invoke']:.2f}x")
    else:
        lines.append("end to end: not measured (needs a model with its manifest)")
    rss = record["peak_rss_mb"]
    if rss["classify_process"] is not None:
        lines.append(f"peak resident memory: edge-classify process {rss['classify_process']:.0f} MB; this benchmark {rss['bench_process']:.0f} MB")
    else:
        lines.append(f"peak resident memory: this benchmark {rss['bench_process']:.0f} MB (no cold-start runs)")
    if record["compare"]:
        lines += [
            "",
            f"compared, bare invoke, {record['schedule']} in the same run (ratio = its median / main model's median):",
            f"{'model':<40}{'input':>22}{'median ms':>11}{'ratio':>8}{'paired':>8}",
            f"{_short(model['path']):<40}{shape:>22}{record['invoke']['median_ms']:>11.3f}{1.0:>8.2f}{'':>8}",
        ]
        for other in record["compare"]:
            info = other["model"]
            other_shape = " ".join("x".join(map(str, i["shape"])) + " " + i["dtype"] for i in info["inputs"])
            lines.append(
                f"{_short(info['path']):<40}{other_shape:>22}{other['invoke']['median_ms']:>11.3f}"
                f"{other['ratio']:>8.2f}{other['paired_ratio_median']:>8.2f}"
            )
    return "\n".join(lines) + "\n"


def _row(name: str, stats: dict[str, Any]) -> str:
    values = "".join(f"{stats[key]:>9.2f}" for key in ("min_ms", "median_ms", "mean_ms", "p90_ms", "p99_ms", "max_ms"))
    return f"{name:<28}{stats['count']:>6}{values}{stats['std_ms']:>8.2f}"


def _short(path: str, width: int = 38) -> str:
    return path if len(path) <= width else "..." + path[-(width - 3) :]
