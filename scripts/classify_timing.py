"""Measure edge-classify as a health worker meets it, and write the record docs/classify.md quotes.

    python scripts/classify_timing.py --scans DIR [--model FILE] [--out reports/classify/x86.json]
    python scripts/classify_timing.py --readme reports/classify/x86.json   # rewrite the block of docs/classify.md

The page's figures sit between `<!-- classify-timing:begin -->` and `<!-- classify-timing:end -->`
and are written from the committed record by --readme, never typed (a test checks they match).

- cold start: wall time from launching `edge-classify SCAN --json` to its first output line,
  for one 1024x1024 PGM (median of --cold-runs launches after one warm-up launch);
- batch: per-scan wall time of `edge.results.batch.run_batch` (what `edge-classify DIR` runs, with its
  decode/prepare worker thread) against the bare `invoke()` and a plain sequential loop, in
  interleaved rounds so machine load hits all three alike;
- peak resident memory of `edge-classify DIR --json` over --batch scans, and with --overlay and --log.
The machine's load average is recorded: shared machines make absolute times upper bounds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from edge.cli.common import one_blas_thread

one_blas_thread()  # as edge-classify does, before anything imports numpy: the batch is timed in this process
from edge.fileio import atomic_write_text  # noqa: E402
from edge.inference.bench import cpu_model  # noqa: E402
from train.doc_blocks import markers, replace_marked, rewrite  # noqa: E402


def cold_start(script: list[str], scan: Path, model: Path, runs: int) -> tuple[list[float], list[float]]:
    """(wall seconds to the first output line, CPU seconds of the whole process) per launch.
    CPU time is what a busy shared machine inflates least: the wall time an idle one would see."""
    times, cpu = [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        child = subprocess.Popen([*script, str(scan), "--model", str(model), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        elapsed = time.perf_counter() - start
        child.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if not line.startswith("{"):
            sys.exit(f"edge-classify failed: {child.stderr}")
        if i:  # the first launch fills the page cache
            times.append(elapsed)
            cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return times, cpu


def batch_times(model: Path, scans: list[Path], rounds: int, threads: int) -> tuple[dict[str, list[float]], int]:
    """Per-scan times of the three ways, interleaved by round, and how many interpreters the batch runs."""
    from edge.results import batch
    from edge.inference.classifier import Classifier
    from edge.scan.decode import read_scan

    classifier = Classifier(model, threads=threads)
    interpreters = 2 if classifier.two_at_once else 1
    image = classifier.prepare(read_scan(scans[0])).image
    for scan in scans[:5]:
        classifier.classify(read_scan(scan))
    sources = [batch.Source(str(p), p) for p in scans]

    def bare() -> float:
        classifier.set_input(image)
        start = time.perf_counter()
        for _ in scans:
            classifier.invoke()
        return (time.perf_counter() - start) / len(scans)

    def sequential() -> float:
        start = time.perf_counter()
        for scan in scans:
            classifier.classify(read_scan(scan)).to_record()
        return (time.perf_counter() - start) / len(scans)

    def pipelined() -> float:
        start = time.perf_counter()
        batch.run_batch(classifier, sources, batch.Options(as_json=True, out=io.StringIO(), err=io.StringIO()))
        return (time.perf_counter() - start) / len(scans)

    out: dict[str, list[float]] = {"bare_invoke": [], "sequential": [], "edge_classify_batch": []}
    for _ in range(rounds):
        for name, task in (("bare_invoke", bare), ("sequential", sequential), ("edge_classify_batch", pipelined)):
            out[name].append(task())
    return out, interpreters


def peak_rss_mb(script: list[str], args: list[str]) -> float:
    """Peak RSS of one child process (the helper is a fresh process, so RUSAGE_CHILDREN is that child's)."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", code, *script, *args], capture_output=True, text=True, check=True)
    return int(result.stdout) / 1024


BLOCK = "classify-timing"
BEGIN, END = markers(BLOCK)
PAGE = Path(__file__).resolve().parents[1] / "docs" / "classify.md"


def readme_block(record: dict) -> str:
    """The page lines for a timing record (what tests/test_classify_report.py compares)."""
    cold, per, rss = record["cold_start_ms"], record["per_scan_ms"], record["peak_rss_mb"]
    load = record["machine"]["load_average_before"][0]
    intro = (
        f"Measured by `scripts/classify_timing.py` on a {record['machine']['cpus']}-core {record['machine'].get('cpu', 'x86')} machine while it was shared"
        f" (load average {load:.1f}), with the model of sha256 `{record['model']['sha256'][:12]}`"
        f" ({record['model']['input_size']}x{record['model']['input_size']} input, {record['threads']} threads);"
        " `reports/classify/x86.json` holds the record:"
    )
    bullets = [
        f"cold start, launch to the first JSON line for one 1024x1024 PGM: median {cold['median']} ms"
        f" ({cold['runs']} launches, {cold['min']}..{cold['max']} ms); the process used a median"
        f" {record['cold_start_cpu_ms']['median']} ms of CPU time, about what an idle machine's wall time would be;",
        f"a batch: {per['edge_classify_batch']:.1f} ms a scan (decode, prepare, invoke, postprocess) against"
        f" {per['bare_invoke']:.1f} ms for the bare invoke, {record['batch_to_invoke_ratio']:.2f}x"
        + (" (two scans at once on two interpreters: the model's kernels use one thread)"
           if record.get("batch_interpreters", 1) == 2 else "")
        + f"; {per['sequential']:.1f} ms, {record['sequential_to_invoke_ratio']:.2f}x, one scan after another"
        " without the worker threads;",
        f"peak resident memory over {record['batch_scans']} scans: {rss['plain']} MB,"
        f" {rss['overlay_and_log']} MB with `--overlay` and `--log`.",
    ]
    lines = [BEGIN, textwrap.fill(intro, 100)]
    lines += [textwrap.fill(b, 100, initial_indent="- ", subsequent_indent="  ") for b in bullets]
    return "\n".join(lines + [END])


def write_readme(record_path: Path) -> None:
    record = json.loads(record_path.read_text())
    rewrite(PAGE, lambda text: replace_marked(text, BLOCK, readme_block(record)))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--readme":
        write_readme(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=Path, required=True, help="folder of 1024x1024 PGM scans (restore_pgm.py output)")
    parser.add_argument("--model", type=Path, default=None, help="default: the packaged model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=60, help="scans in the batch measurements")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from edge.inference.classifier import default_model_path
    from edge.inference.manifest import load_manifest, manifest_path_for

    model = args.model or default_model_path()
    manifest = load_manifest(manifest_path_for(model))
    scans = sorted(args.scans.glob("*.pgm"))[: args.batch]
    if not scans:
        sys.exit(f"error: no .pgm scans in {args.scans} (PNG copies: python ../shared/mias/restore_pgm.py DIR first)")
    script = [sys.executable, "-c", "from edge.cli.classify import main; main()"]
    load_before = os.getloadavg()
    cold, cold_cpu = cold_start(script, scans[0], model, args.cold_runs)
    times, interpreters = batch_times(model, scans, args.rounds, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scans"
        folder.mkdir()
        for scan in scans:
            (folder / scan.name).symlink_to(scan.resolve())
        rss_plain = peak_rss_mb(script, [str(folder), "--model", str(model), "--json"])
        rss_all = peak_rss_mb(script, [str(folder), "--model", str(model), "--json", "--overlay", f"{tmp}/o", "--log", f"{tmp}/l.db"])
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    record = {
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "model": {"path": str(model), "sha256": manifest.sha256, "input_size": manifest.input_size},
        "threads": args.threads,
        "cold_start_ms": {"median": round(statistics.median(cold) * 1000), "min": round(min(cold) * 1000), "max": round(max(cold) * 1000), "runs": len(cold)},
        "cold_start_cpu_ms": {"median": round(statistics.median(cold_cpu) * 1000)},
        "per_scan_ms": {name: round(value, 2) for name, value in median.items()},
        "batch_to_invoke_ratio": round(median["edge_classify_batch"] / median["bare_invoke"], 2),
        "sequential_to_invoke_ratio": round(median["sequential"] / median["bare_invoke"], 2),
        "batch_scans": len(scans),
        "batch_interpreters": interpreters,
        "rounds": args.rounds,
        "peak_rss_mb": {"plain": round(rss_plain), "overlay_and_log": round(rss_all)},
    }
    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    print(text, end="")


if __name__ == "__main__":
    main()
