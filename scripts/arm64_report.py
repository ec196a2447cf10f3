"""The report of `scripts/arm64_check.sh`: emulated arm64 answers against x86 answers, as JSON.

    python scripts/arm64_report.py WORK_DIR --out reports/boards/arm64-emulated.json

WORK_DIR holds what the shell script collected: `x86.KERNELS.jsonl` (host `edge-classify --json`,
KERNELS = builtin, the device configs' choice, or reference), and per environment NAME (`litert`,
`tflite`) `NAME.KERNELS.jsonl` with `NAME.KERNELS.run.json` (exit status, wall seconds, end of
stderr), `NAME.bench.json` (`edge-bench --json`), `NAME.identity.json` (versions seen inside the
root) and `NAME.times.json` (wall seconds of the install and the bench); `run.json` has the
commit and the root's facts. Answers are compared by file name, record by record: identical
means every field of every `--json` record (probabilities, triage, heat-map peak...) is the same.
Every wall time here is under qemu user emulation on the x86 host: not a board figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EMULATED = ("emulated: aarch64 code under qemu-user on the x86 host named in 'host'; "
            "these are not Raspberry Pi figures (a Pi runs the same code natively, many times faster)")


def read_lines(path: Path) -> dict[str, dict]:
    """`edge-classify --json` output by file name (the folders differ between host and root)."""
    records = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[Path(record["file"]).name] = record
    return records


def compare(x86: dict[str, dict], other: dict[str, dict]) -> dict:
    """Same scans, and for each: same probabilities, same whole record?"""
    names = sorted(x86)
    differ = [n for n in names if {k: v for k, v in other.get(n, {}).items() if k != "file"}
              != {k: v for k, v in x86[n].items() if k != "file"}]
    probabilities = [n for n in names if other.get(n, {}).get("probabilities") != x86[n].get("probabilities")]
    largest = 0.0
    for n in names:
        mine, theirs = x86[n].get("probabilities", {}), other.get(n, {}).get("probabilities", {})
        for label, value in mine.items():
            if label in theirs:
                largest = max(largest, abs(value - theirs[label]))
    return {
        "scans": len(names),
        "same_scans": sorted(other) == names,
        "errors": sorted(n for n, r in other.items() if "error" in r),
        "probabilities_identical": not probabilities and sorted(other) == names,
        "records_identical": not differ and sorted(other) == names,
        "scans_with_other_probabilities": probabilities,
        "scans_with_other_records": differ,
        "largest_probability_difference": round(largest, 4),
    }


def bench_summary(path: Path) -> dict | None:
    if not path.is_file():
        return None
    record = json.loads(path.read_text())

    def median(key):
        value = record.get(key)
        return value["median_ms"] if value else None

    return {
        "note": EMULATED,
        "runtime": record.get("runtime"),
        "kernels": record.get("kernels"),
        "threads": record.get("threads"),
        "runs": record.get("runs"),
        "warmup": record.get("warmup"),
        "cpu_seen_inside": record.get("system", {}).get("cpu"),
        "machine_seen_inside": record.get("system", {}).get("machine"),
        "model_sha256": record.get("model", {}).get("sha256"),
        "invoke_median_ms": median("invoke"),
        "end_to_end_median_ms": median("end_to_end"),
        "cold_start_median_ms": median("cold_start"),
        "model_load_ms": record.get("load_ms"),
        "peak_rss_mb": record.get("peak_rss_mb"),
    }


KERNELS = ("builtin", "reference")


def build(work: Path) -> dict:
    run = json.loads((work / "run.json").read_text())
    x86 = {k: read_lines(work / f"x86.{k}.jsonl") for k in KERNELS}
    shas = sorted({r["model"] for records in x86.values() for r in records.values() if "model" in r})
    environments = {}
    for name in ("litert", "tflite"):
        if not (work / f"{name}.identity.json").is_file():
            continue
        by_kernels = {}
        for kernels in KERNELS:
            lines = work / f"{name}.{kernels}.jsonl"
            answers = read_lines(lines) if lines.is_file() else {}
            by_kernels[kernels] = {
                "run": json.loads((work / f"{name}.{kernels}.run.json").read_text()),
                "answers_vs_x86": compare(x86[kernels], answers),
                "model_sha256": sorted({r["model"] for r in answers.values() if "model" in r}),
            }
        environments[name] = {
            "install": run["installs"][name],
            "identity": json.loads((work / f"{name}.identity.json").read_text()),
            "kernels": by_kernels,
            "wall_seconds_emulated": json.loads((work / f"{name}.times.json").read_text()),
            "bench_emulated": bench_summary(work / f"{name}.bench.json"),
        }
    between = {}
    if {"litert", "tflite"} <= set(environments):
        for kernels in KERNELS:
            mine, theirs = work / f"litert.{kernels}.jsonl", work / f"tflite.{kernels}.jsonl"
            if mine.is_file() and theirs.is_file() and read_lines(mine):
                between[kernels] = compare(read_lines(mine), read_lines(theirs))

    def identical(kernels):
        return bool(environments) and all(
            e["kernels"][kernels]["run"]["exit_status"] == 0 and e["kernels"][kernels]["answers_vs_x86"]["records_identical"]
            for e in environments.values())

    return {
        "tool": "scripts/arm64_check.sh",
        "what": "the board install of the README in an arm64 Debian bookworm root (Raspberry Pi OS's base) "
                "under qemu-user, answers compared with x86 for the same development scans and kernels",
        "time_utc": run["time_utc"],
        "commit": run["commit"],
        "model_sha256": shas[0] if len(shas) == 1 else shas,
        "scans": sorted(x86["builtin"]),
        "answers_identical": "yes" if identical(pi_kernels()) else "no",
        "answers_identical_by_kernels": {k: "yes" if identical(k) else "no" for k in KERNELS},
        "device_config_kernels": pi_kernels(),
        "x86": run["x86"],
        "root": run["root"],
        "host": run["host"],
        "environments": environments,
        "arm64_litert_vs_arm64_tflite_runtime": between,
        "wall_seconds": {**run["wall_seconds"], "note": EMULATED},
    }


def pi_kernels() -> str:
    """The kernels the Raspberry Pi device configs ask for: the answers that must be x86's."""
    import tomllib

    configs = Path(__file__).resolve().parents[1] / "device_configs"
    kernels = {tomllib.loads((configs / f"{name}.toml").read_text())["kernels"] for name in ("rpi4", "rpi5")}
    if len(kernels) != 1:
        raise SystemExit(f"error: rpi4.toml and rpi5.toml ask for different kernels: {sorted(kernels)}")
    return kernels.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write reports/boards/arm64-emulated.json")
    parser.add_argument("work", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = build(args.work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, env in report["environments"].items():
        for kernels, result in env["kernels"].items():
            answers = result["answers_vs_x86"]
            status = result["run"]["exit_status"]
            print(f"{name} ({env['identity'].get('runtime')}), {kernels} kernels: "
                  + (f"edge-classify exited {status} ({result['run']['stderr_tail'][-120:]!r})" if status else
                     f"{answers['scans']} scans, records identical to x86: {'yes' if answers['records_identical'] else 'no'} "
                     f"(largest probability difference {answers['largest_probability_difference']})"))
    print(f"answers identical with the Pi device configs' kernels ({report['device_config_kernels']}): {report['answers_identical']}; "
          f"by kernels: {report['answers_identical_by_kernels']}; written {args.out}")
    return 0 if report["answers_identical"] == "yes" else 1


if __name__ == "__main__":
    sys.exit(main())
