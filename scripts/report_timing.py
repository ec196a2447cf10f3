"""How long edge-report takes, and how much memory, on a year of a busy centre's results log.

    python scripts/report_timing.py ../shared/mias [--rows 50000] [--days 365] [--folder DIR] [--record FILE]

Builds the log with the code edge-classify logs with: `edge-classify --log` reads 20 development
scans (10 women) and two bad files into a seed log, then `edge.results.log.ResultsLog.add` writes
their rows again and again, each copy under its own --id and woman, at times spread over `--days`
working days (8:00 to 16:00 local time), with a fresh sha256 for all but the last day's scans (so
only those can get a picture, as on a board whose older scans are gone). Then it times
`edge-report` twice, each in its own process: one day (the last, with its pictures) and the
whole log; it prints wall time and the process's peak resident memory (ru_maxrss) as JSON, and
with --record writes it to FILE (reports/report/timing.json is the figure of docs/report.md).
tests/test_report_large.py builds its log with `build_log`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

SEED_SCANS = [f"mdb{n:03d}.png" for n in range(3, 23)]  # mdb003..mdb022: 10 women of the development split


def seed_log(mias: Path, folder: Path, model: Path | None = None) -> Path:
    """A real log of real readings: edge-classify on 20 development scans, a text file named .png and a photo."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.png").write_text("not an image\n")
    from PIL import Image

    Image.new("RGB", (800, 600), (200, 40, 40)).save(folder / "photo.png")
    log = folder / "seed.sqlite"
    log.unlink(missing_ok=True)
    result = subprocess.run([str(Path(sys.executable).with_name("edge-classify")), *(str(mias / n) for n in SEED_SCANS),
                             str(folder / "notes.png"), str(folder / "photo.png"), "--log", str(log), "--json",
                             *(["--model", str(model)] if model else [])], capture_output=True, text=True, timeout=600)
    if result.returncode not in (0, 1):  # 1: the two bad files
        raise SystemExit(f"edge-classify failed: {result.stderr.strip()}")
    return log


@contextmanager
def clock(moments):
    """edge.results.log's clock, set to each of `moments` in turn (one per row written)."""
    import edge.results.log as results_log

    real = results_log.datetime

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return next(moments)

    results_log.datetime = Clock
    try:
        yield
    finally:
        results_log.datetime = real


def build_log(mias: Path, folder: Path, rows: int = 50_000, days: int = 365, model: Path | None = None) -> Path:
    """`rows` rows over `days` working days, copies of the seed log's rows (see the module's docstring)."""
    from edge.results.log import LogReader, ResultsLog

    with LogReader(seed_log(mias, folder, model)) as reader:
        seed = list(reader.rows())
    per_day = -(-rows // days)
    start = datetime.now().astimezone().replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    moments = iter(start + timedelta(days=i // per_day, seconds=(i % per_day) * 8 * 3600 / per_day) for i in range(rows))
    path = folder / "year.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with ResultsLog(path) as log, clock(moments):
        log._db.execute("PRAGMA synchronous=OFF")  # the build only: a year of commits at a board's fsync would take minutes
        for i in range(rows):
            row = seed[i % len(seed)]
            copy = i // len(seed)
            last_day = i // per_day == days - 1
            outputs = dict(row.outputs or {})
            outputs["id"] = f"VISIT-{copy}"
            if outputs.get("woman"):
                outputs["woman"] = f"{outputs['woman']}-{copy}"
            sha = row.file_sha256
            if sha and not last_day:
                sha = hashlib.sha256(f"{sha}{copy}".encode()).hexdigest()
            log.add(row.file, sha, row.model_sha256, outputs if outputs else None, row.error, drawing=row.drawing)
    return path


MEASURE = (
    "import resource, subprocess, sys, time; started = time.perf_counter(); "
    "status = subprocess.run(sys.argv[1:], capture_output=True, text=True); wall = time.perf_counter() - started; "
    "print(status.returncode, round(wall, 2), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "print(status.stdout.strip() or status.stderr.strip())"
)
"""Run a command from a small Python process: its children's ru_maxrss is then the command's own
peak (a child forked from this script would count this script's memory until it execs)."""


def timed(argv: list[str]) -> dict:
    """Wall time and peak resident memory of one command, run in its own process."""
    result = subprocess.run([sys.executable, "-S", "-c", MEASURE, *argv], capture_output=True, text=True, check=True)
    head, _, output = result.stdout.partition("\n")
    status, wall, rss_kb = head.split()
    if status != "0":
        raise SystemExit(f"{' '.join(argv)} failed: {output.strip()}")
    return {"seconds": float(wall), "peak_rss_mb": round(int(rss_kb) / 1024, 1), "output": output.strip()}


def last_day(log: Path) -> str:
    from edge.results.log import LogReader

    with LogReader(log) as reader:
        *_, row = reader.rows()
    return datetime.fromisoformat(row.time).astimezone().date().isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mias", type=Path, help="the development scans (../shared/mias)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--folder", type=Path, default=Path("build/report_timing"))
    parser.add_argument("--record", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    started = time.perf_counter()
    log = build_log(args.mias.resolve(), args.folder, args.rows, args.days)
    built = time.perf_counter() - started
    report = str(Path(sys.executable).with_name("edge-report"))
    day = last_day(log)
    from edge.inference.bench import cpu_model

    result = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores ({platform.machine()})",
        "command": " ".join(["python", "scripts/report_timing.py", *sys.argv[1:]]),
        "load_average_before": [round(v, 1) for v in os.getloadavg()],
        "rows": args.rows, "days": args.days, "build_seconds": round(built, 1),
        "one_day": timed([report, str(log), "--out", str(args.folder / "day"), "--since", day, "--until", day]),
        "whole_log": timed([report, str(log), "--out", str(args.folder / "year")]),
        "load_average_after": [round(v, 1) for v in os.getloadavg()],
    }
    for run in ("one_day", "whole_log"):
        result[run]["output"] = result[run]["output"].replace(str(args.folder), "DIR")
    text = json.dumps(result, indent=1) + "\n"
    print(text, end="")
    if args.record:
        args.record.write_text(text)


if __name__ == "__main__":
    main()
