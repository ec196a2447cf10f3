"""Write the figures of the README's "## Benchmarks" section from a committed edge-bench record.

    python scripts/bench_readme.py reports/bench/x86.json            # print the block
    python scripts/bench_readme.py reports/bench/x86.json --write    # replace it in README.md

The block sits between `<!-- bench:begin -->` and `<!-- bench:end -->`: README figures are
copied from committed reports, never typed (tests/test_bench_report.py checks they match).
The compared models are recognised by file name: `*mobilenet*` is the reference, `*float*`
our float32 TFLite model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge.readme_blocks import markers, replace_marked, rewrite

BLOCK = "bench"
BEGIN, END = markers(BLOCK)
ANCHORS = {
    "Raspberry Pi 4, CPU": (22.0, 45.0),
    "Coral USB Accelerator (Edge TPU)": (2.6, 2.6),
}
"""Published MobileNetV2 int8 224 invoke times, ms (model only)."""
TARGET_RATIO, TARGET_E2E, TARGET_COLD_MS = 2.0, 2.0, 500.0


def find(record: dict, word: str) -> dict | None:
    return next((c for c in record["compare"] if word in Path(c["model"]["path"]).name.lower()), None)


def block(record: dict, source: str) -> str:
    system, invoke = record["system"], record["invoke"]
    mobilenet, floating = find(record, "mobilenet"), find(record, "float")
    machine = f"{system['cpu']}, {system['cores']} cores ({system['machine']})"
    lines = [
        BEGIN,
        f"Measured on this development machine, **{machine}**, {record['runtime']}, "
        f"{record['threads']} threads, no delegate, {record['warmup']} warm-up then {record['runs']} timed runs "
        f"interleaved in one loop, {record['time_utc']}{_load(record)} (`{source}`, table in "
        f"`{Path(source).with_suffix('.txt')}`). Absolute times here are not board times; the ratios are what carries over.",
        "",
        "| model | input | median invoke | ratio to our int8 |",
        "| --- | --- | ---: | ---: |",
        f"| ours, int8 (`{Path(record['model']['path']).name}`, sha256 {record['model']['sha256'][:12]}...) "
        f"| {_input(record['model'])} | {invoke['median_ms']:.2f} ms | 1.00 |",
    ]
    for other in filter(None, (floating, mobilenet)):
        lines.append(
            f"| {'ours, float32' if other is floating else 'MobileNetV2 224, int8'} (`{Path(other['model']['path']).name}`) "
            f"| {_input(other['model'])} | {other['invoke']['median_ms']:.2f} ms | {other['ratio']:.2f} |"
        )
    lines += ["", "| measure | median | p90 | target | met |", "| --- | ---: | ---: | --- | --- |"]
    if mobilenet:
        ours_over = 1.0 / mobilenet["ratio"]
        lines.append(
            f"| our int8 invoke / MobileNetV2 int8 invoke | {ours_over:.2f}x | | at most {TARGET_RATIO:.1f}x | "
            f"{'yes' if ours_over <= TARGET_RATIO else '**no**'} |"
        )
    if record["end_to_end"]:
        e2e, ratio = record["end_to_end"], record["end_to_end_over_invoke"]
        lines.append(
            f"| end to end per scan (decode + prepare + invoke + postprocess, heat-map) | {e2e['median_ms']:.1f} ms "
            f"({ratio:.2f}x invoke) | {e2e['p90_ms']:.1f} ms | at most {TARGET_E2E:.0f}x invoke | "
            f"{'yes' if ratio <= TARGET_E2E else '**no**'} |"
        )
        stages = ", ".join(f"{name} {s['median_ms']:.1f} ms" for name, s in record["end_to_end_stages"].items())
    if record["cold_start"]:
        cold = record["cold_start"]
        lines.append(
            f"| cold start, `edge-classify --json` launch to first result | {cold['median_ms']:.0f} ms | "
            f"{cold['p90_ms']:.0f} ms | under {TARGET_COLD_MS:.0f} ms | {'yes' if cold['median_ms'] < TARGET_COLD_MS else '**no**'} |"
        )
        if record.get("cold_start_cpu"):
            lines.append(
                f"| that process's CPU time to exit (user + system, all threads) | "
                f"{record['cold_start_cpu']['median_ms']:.0f} ms | {record['cold_start_cpu']['p90_ms']:.0f} ms | | |"
            )
    rss = record["peak_rss_mb"]["classify_process"]
    if rss is not None:
        lines.append(f"| peak resident memory of that process | {rss:.0f} MB | | | |")
    lines.append("")
    if record["end_to_end"]:
        lines.append(f"End-to-end stages (medians): {stages}; model load {record['load_ms']:.0f} ms, first inference "
                     f"{record['first_inference_ms']:.1f} ms.")
        lines.append("")
    if mobilenet:
        ours_over = 1.0 / mobilenet["ratio"]
        lines += [
            f"**Estimates, not measurements** (published MobileNetV2 int8 times x the ratio {ours_over:.2f} measured here; "
            "to be replaced by a committed board figure):",
            "",
            "| board | MobileNetV2 int8 (published) | our int8 model (estimate) |",
            "| --- | ---: | ---: |",
        ]
        for board, (low, high) in ANCHORS.items():
            published = f"{low:g} ms" if low == high else f"{low:g}-{high:g} ms"
            estimate = f"{low * ours_over:.1f} ms" if low == high else f"{low * ours_over:.0f}-{high * ours_over:.0f} ms"
            lines.append(f"| {board} | {published} | ~{estimate} |")
        lines += [
            "",
            "The Coral row assumes the whole model compiles to the Edge TPU and that both models scale alike "
            "there, which a CPU ratio cannot show: take it as an order of magnitude.",
        ]
    lines.append(END)
    return "\n".join(lines)


def _load(record: dict) -> str:
    load = record.get("load_average") or {}
    if not load.get("before") or not load.get("after"):
        return ""
    return f", 1-minute load average {load['before'][0]:.1f} before and {load['after'][0]:.1f} after on {record['system']['cores']} cores"


def _input(model: dict) -> str:
    return ", ".join("x".join(map(str, i["shape"])) + " " + i["dtype"] for i in model["inputs"])


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    source = argv[0]
    text = block(json.loads(Path(source).read_text(encoding="utf-8")), source)
    if "--write" in argv:
        rewrite(Path(__file__).resolve().parents[1] / "README.md", lambda readme: replace_marked(readme, BLOCK, text))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
