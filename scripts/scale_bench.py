"""Images per second of `edge-train --strategy`: one process, two localhost workers, the input pipeline alone.

    python scripts/scale_bench.py ../shared/mias [--rounds 3] [--scans 64] [--steps 40] [--out research/scale]

Each round measures, in an order that rotates from round to round so that machine load hits all
three alike:
- the input pipeline alone (`train.distributed.input_pipeline`, in this process): one pass over
  the training scans while it decodes and prepares them, then three passes from its cache;
- one process: `edge-train --strategy default`;
- two workers on this machine: two `edge-train --strategy multiworker` processes with a
  TF_CONFIG of two 127.0.0.1 ports.
The training figures are the chief's `training.json` (`record.images_per_second`: the global
batch over the median step of the second half of the steps, when every scan is cached and the
step traced). Writes `scale.json` (every round) and `scale.md` (medians and ratios) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.inference.bench import describe_system
from edge.fileio import atomic_write_text

KINDS = ("pipeline", "one process", "two workers")


def edge_train(*args) -> list[str]:
    return [str(Path(sys.executable).with_name("edge-train")), *map(str, args)]


def train_rate(data: Path, out: Path, args, workers: int) -> tuple[float, int]:
    """(images per second, trained parameters) of one `edge-train --strategy` run, from the chief's
    training.json (two processes when workers=2)."""
    common = ["--data", data, "--strategy", "multiworker" if workers > 1 else "default", "--size", args.size,
              "--steps", args.steps, "--batch-size", args.batch_size, "--limit", args.scans]
    if workers == 1:
        subprocess.run(edge_train(*common, "--out", out / "w0"), check=True, capture_output=True, text=True)
    else:
        sockets = [socket.socket() for _ in range(workers)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
        for s in sockets:
            s.close()
        processes = [
            subprocess.Popen(edge_train(*common, "--out", out / f"w{i}"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
            for i in range(workers)
        ]
        for process in processes:
            _, err = process.communicate(timeout=1800)
            if process.returncode:
                raise SystemExit(f"a worker failed:\n{err[-2000:]}")
    record = json.loads((out / "w0" / "final" / "training.json").read_text())["record"]
    return float(record["images_per_second"]), int(record["trained_parameters"])


def pipeline_rates(data: Path, args) -> tuple[float, float]:
    """(images/s while preparing, images/s from the cache) of the input pipeline alone, one worker."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from train import records as training_records
    from train.distributed import Settings, input_pipeline
    from train.splits import patient_folds

    records = training_records.load(data)[: args.scans]
    settings = Settings(size=args.size, batch_size=args.batch_size)
    index = np.flatnonzero(patient_folds(records, k=settings.folds, seed=settings.seed) != 0)
    batches = iter(input_pipeline(records, index, settings)(tf.distribute.InputContext()))
    per_pass = len(index) // settings.batch_size
    rates = []
    for passes in (1, 3):
        t0 = time.perf_counter()
        for _ in range(per_pass * passes):
            next(batches)
        rates.append(per_pass * passes * settings.batch_size / (time.perf_counter() - t0))
    return rates[0], rates[1]


def page(record: dict) -> str:
    """scale.md from the record."""
    m, s, system = record["medians"], record["settings"], record["system"]
    ratio = record["ratios"]
    two, prepared, cached = ratio["two workers"], ratio["preparing"], ratio["cached"]
    each = [r["two workers"] / r["one process"] for r in record["rounds"]]
    lines = [
        "# Scale-out training: one process, two localhost workers, the input pipeline",
        "",
        "Research software, not a medical device. What `edge-train --strategy` trains and how: "
        "docs/retraining.md and `train/distributed.py`.",
        "",
        f"Measured on **{system['cpu']}, {system['cores']} cores ({system['machine']})**, {record['when']}, "
        f"{s['rounds']} rounds in rotating order, medians; load average {record['load_before'][0]} before and "
        f"{record['load_after'][0]} after (the machine is shared). Each training run: the first {s['scans']} development "
        f"scans at {s['size']} px (trunk at {s['size']} and {s['size'] // 2}, heads trained, trunk frozen), global batch "
        f"{s['batch_size']}, {s['steps']} steps, timed over the second half (scans cached, step traced).",
        "",
        "| what | images per second (median) | each round | ratio to one process: median (each round) |",
        "| --- | ---: | --- | ---: |",
        f"| one process (`--strategy default`) | {m['one process']:.1f} | {_list(record, 'one process')} | 1.00 |",
        f"| two workers on this machine (`--strategy multiworker`, TF_CONFIG with two 127.0.0.1 ports) | "
        f"{m['two workers']:.1f} | {_list(record, 'two workers')} | {two:.2f} ({_ratios(record, 'two workers')}) |",
        f"| input pipeline alone, preparing (decode + `prepare` + targets, first pass) | {m['preparing']:.1f} | "
        f"{_list(record, 'preparing')} | {prepared:.2f} ({_ratios(record, 'preparing')}) |",
        f"| input pipeline alone, from its cache (later passes) | {m['cached']:.0f} | {_list(record, 'cached', 0)} | "
        f"{cached:.0f} ({_ratios(record, 'cached', 0)}) |",
        "",
        "What this shows:",
        f"- The engine runs: two worker processes train in step through TensorFlow's collective all-reduce and end "
        f"with identical weights (`tests/test_distributed.py` checks the digests). On this machine two workers run at "
        f"{two:.2f}x one process ({min(each):.2f} to {max(each):.2f} across rounds, on a shared machine): they share its {system['cores']} cores, so each step does the same arithmetic on the "
        "same cores plus the all-reduce and the coordination between two processes.",
        (f"- The input pipeline is not the bottleneck: preparing scans runs at {prepared:.1f}x what training consumes"
         if prepared > 1 else f"- Preparing scans (decode and `prepare`) is slower than training here ({prepared:.2f}x), "
         "which is what the cache is for: only the first pass prepares")
        + f", and from the cache the pipeline delivers {cached:.0f}x what training consumes.",
        "",
        "What it does not show:",
        "- How training scales over many machines or GPUs: two processes on one 2-core machine share the cores, "
        "talk over loopback (no network latency or bandwidth) and have no accelerator. Across machines each worker "
        "brings its own cores or GPUs and the cost is the all-reduce of the trained weights' gradients "
        ""
        f"({record['trained_parameters'] * 4 / 1e3:.0f} kB for the heads trained here; more with `--fine-tune`) once a step, small beside a step's "
        "arithmetic; how close to linear that scales on real machines is not measured here.",
        "- Whether preparing keeps up with GPUs or with a centre's scans: a GPU steps far faster than this CPU, "
        "and a modern digital mammogram (a 16-bit DICOM of several thousand pixels a side) takes longer to decode "
        "and prepare than a 1024-pixel MIAS PNG; then the first pass can bound the first epoch, and later epochs read the cache.",
        "- Anything about accuracy: the runs are too short to learn.",
        "",
        f"Regenerate: `python scripts/scale_bench.py ../shared/mias --rounds {s['rounds']} --scans {s['scans']} "
        f"--steps {s['steps']} --batch-size {s['batch_size']} --size {s['size']} --out research/scale` (about {record['seconds'] / 60:.0f} minutes here); "
        "every round's figures are in `scale.json`.",
    ]
    return "\n".join(lines) + "\n"


def _list(record: dict, kind: str, digits: int = 1) -> str:
    return ", ".join(f"{r[kind]:.{digits}f}" for r in record["rounds"])


def _ratios(record: dict, kind: str, digits: int = 2) -> str:
    return ", ".join(f"{r[kind] / r['one process']:.{digits}f}" for r in record["rounds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the development scans (../shared/mias)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scans", type=int, default=64, help="the first N scans (the held-out fold is not trained on)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("research/scale"))
    args = parser.parse_args()
    started, load_before = time.time(), [round(v, 2) for v in os.getloadavg()]
    rounds, trained = [], 0
    for number in range(args.rounds):
        result = {}
        for kind in KINDS[number % 3 :] + KINDS[: number % 3]:
            print(f"round {number + 1}/{args.rounds}: {kind}", flush=True)
            with tempfile.TemporaryDirectory() as folder:
                if kind == "pipeline":
                    result["preparing"], result["cached"] = pipeline_rates(args.data, args)
                else:
                    result[kind], trained = train_rate(args.data, Path(folder), args, 1 if kind == "one process" else 2)
        print("  " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
        rounds.append(result)
    record = {
        "what": "images per second of edge-train --strategy (chief's training.json) and of its input pipeline alone",
        "system": describe_system(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "settings": {key: getattr(args, key) for key in ("rounds", "scans", "steps", "batch_size", "size")},
        "trained_parameters": trained,
        "rounds": rounds,
        "medians": {key: statistics.median(r[key] for r in rounds) for key in rounds[0]},
        "ratios": {key: statistics.median(r[key] / r["one process"] for r in rounds) for key in rounds[0]},
        "seconds": round(time.time() - started),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "scale.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(args.out / "scale.md", page(record))
    print(f"wrote {args.out / 'scale.md'}")


if __name__ == "__main__":
    main()
