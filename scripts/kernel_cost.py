"""What the runner's kernel choice costs: bare invoke under each `kernels` of `edge.runtime`.

    python scripts/kernel_cost.py [--model FILE] [--compare A.tflite ...] [--kernels builtin,reference,default]
                                  [--compare-kernels builtin,default]
                                  [--threads 2] [--runs 300] [--out FILE.json]

Every model is loaded once per kernel choice of `edge.runtime.make_interpreter` (builtin, the
device configs' choice; reference; default, the runtime's own) in the runtime installed here
(`--runtime`), and all of them are timed in one loop by `edge-bench`'s own `edge.inference.bench.interleave`
(warm-up not counted, then round-robin rounds), so the ratios to builtin hold on a shared machine
where absolute times drift. The record names the
machine, the runtime and its version, the threads and the load average; absolute times are this
machine's, not a board's. Needs only the device runner (numpy + a TFLite runtime), so it runs
wherever `edge-classify` does, tflite-runtime 2.14 included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from edge.inference import bench
from edge.inference.classifier import default_model_path
from edge.errors import EdgeError
from edge.fileio import atomic_write_text
from edge.runtime import KERNELS, runtime_version


def measure(models: list[Path], threads: int, runtime: str, runs: int, warmup: int, kernel_set: tuple[str, ...] = KERNELS,
            compare_set: tuple[str, ...] | None = None) -> dict:
    """The JSON-ready record: per model and kernel choice, the bare invoke stats and the ratio.
    The first model runs under `kernel_set`, the others under `compare_set` (default the same):
    MobileNetV2's int8 graph aborts at allocation under LiteRT 2.3's reference kernels."""
    load_before = bench._load_average()
    sets = [kernel_set] + [compare_set or kernel_set] * (len(models) - 1)
    tasks, infos = {}, {}
    for index, path in enumerate(models):
        for kernels in sets[index]:
            interpreter, info = bench.load_bare(path, threads, runtime=runtime, kernels=kernels)
            tasks[f"{index}:{kernels}"] = bench.invoke_task(interpreter, seed=index)
            infos[index] = info
    timings = bench.interleave(tasks, runs, warmup)
    rows = []
    for index, _path in enumerate(models):
        stats = {k: asdict(bench.summarize(timings[f"{index}:{k}"].runs)) for k in sets[index]}
        rows.append({
            "model": infos[index].path,
            "sha256": infos[index].sha256,
            "inputs": infos[index].inputs,
            "invoke": stats,
            "over_builtin": {k: round(stats[k]["median_ms"] / stats["builtin"]["median_ms"], 3) for k in sets[index]},
        })
    return {
        "tool": "scripts/kernel_cost.py",
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "system": bench.describe_system(),
        "load_average": {"before": load_before, "after": bench._load_average()},
        "runtime": runtime_version(runtime),
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "schedule": "interleaved: every model under both kernel choices in one loop",
        "kernels": list(dict.fromkeys(kernel_set + (compare_set or ()))),
        "models": rows,
    }


def table(record: dict) -> str:
    system = record["system"]
    load = record["load_average"]
    lines = [
        f"machine  {system['cpu']}, {system['cores']} cores ({system['machine']}){'; board ' + system['board'] if system['board'] else ''}",
        f"runtime  {record['runtime']}, {record['threads']} threads; {record['warmup']} warm-up + {record['runs']} runs, interleaved"
        + (f"; load average {load['before'][0]:.1f} before, {load['after'][0]:.1f} after" if load["before"] and load["after"] else ""),
        "median invoke (ratio to builtin, the device configs' choice):",
        f"{'model':<28}" + "".join(f"{k:>20}" for k in record["kernels"]),
    ]
    for row in record["models"]:
        cells = [f"{row['invoke'][k]['median_ms']:.2f} ms ({row['over_builtin'][k]:.2f})" if k in row["invoke"] else "-"
                 for k in record["kernels"]]
        lines.append(f"{Path(row['model']).name:<28}" + "".join(f"{c:>20}" for c in cells))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="main model (default: the packaged one)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other .tflite files timed in the same loop")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtime", default="auto", help="auto, ai_edge_litert or tflite_runtime")
    parser.add_argument("--kernels", default=",".join(KERNELS), help=f"which of {', '.join(KERNELS)} (builtin always)")
    parser.add_argument("--compare-kernels", default=None, help="kernels of the --compare models (default: --kernels)")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON record here")
    parser.add_argument("--json", action="store_true", help="print the JSON record instead of the table")
    args = parser.parse_args(argv)
    kernel_set = tuple(dict.fromkeys(["builtin", *args.kernels.split(",")]))
    compare_set = tuple(dict.fromkeys(["builtin", *args.compare_kernels.split(",")])) if args.compare_kernels else None
    try:
        if set(kernel_set + (compare_set or ())) - set(KERNELS):
            raise EdgeError(f"--kernels, --compare-kernels: use {', '.join(KERNELS)}")
        record = measure([args.model or default_model_path(), *args.compare], args.threads, args.runtime, args.runs, args.warmup,
                         kernel_set, compare_set)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    print(text if args.json else table(record), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
