"""Write the figures of docs/benchmarks.md from committed edge-bench records.

    python scripts/bench_readme.py reports/bench/x86.json            # print both blocks
    python scripts/bench_readme.py reports/bench/x86.json --write    # replace them in docs/benchmarks.md
                                   [--records reports/boards] [--readme docs/benchmarks.md]

Two blocks: `bench` (between `<!-- bench:begin -->` and `<!-- bench:end -->`), this development
machine's record with its compared models; and `boards` (`<!-- boards:begin -->` ...), the board
table: one row per board record in `reports/boards/` (what `edge-bench --record` writes; the
folder's other reports, such as arm64-emulated.json, are not edge-bench records and are left
out), and an estimate row, marked as one, for each board in ESTIMATED that has no record yet.
The speed budget and the estimates compare our invoke with MobileNetV2's on the footing of its
published board times, LiteRT's default kernels, from FOOTING (scripts/kernel_cost.py).
Page figures are copied from committed reports, never typed (tests/test_bench_report.py and
tests/test_board_records.py check they match). The compared models are recognised by file
name: `*mobilenet*` is the reference, `*float*` our float32 TFLite model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.inference.bench import read_record
from edge.inference.device import load_device
from edge.errors import EdgeError
from train.doc_blocks import markers, replace_marked, rewrite

REPO = Path(__file__).resolve().parents[1]
BLOCK, BOARDS = "bench", "boards"
BEGIN, END = markers(BLOCK)
ESTIMATED = {
    "rpi4": ("Raspberry Pi 4, CPU", 22.0, 45.0),
    "coral-usb": ("Coral USB Accelerator (Edge TPU)", 2.6, 2.6),
}
"""Boards estimated until a record replaces them, by device config: name, published MobileNetV2
int8 224 invoke time range, ms (model only)."""
TARGET_RATIO, TARGET_E2E, TARGET_COLD_MS = 10.0, 2.0, 500.0
"""The speed budget: a scan may cost up to 10x a MobileNetV2-224 int8 invoke (about a second per woman on a Pi 4),
end to end at most twice its invoke, and a cold start under half a second."""
FOOTING = "reports/bench/kernels.json"
"""scripts/kernel_cost.py's record: the shipped model and MobileNetV2 int8 under every kernel choice in one
loop. The speed budget and the board estimates are read on its default kernels (XNNPACK), the footing
of MobileNetV2's published board times."""
WOMAN = 2
"""Scans in a woman's exam: the budget is a second for her two scans on a Pi 4."""


def footing(shipped_sha256: str) -> dict[str, dict[str, float]]:
    """Median invoke in ms, {"ours" | "mobilenet": {kernels: ms}}, from the FOOTING record."""
    record = json.loads((REPO / FOOTING).read_text(encoding="utf-8"))
    rows = {"ours": [m for m in record["models"] if m["sha256"] == shipped_sha256],
            "mobilenet": [m for m in record["models"] if "mobilenet" in Path(m["model"]).name.lower()]}
    if not rows["ours"] or not rows["mobilenet"] or "default" not in record["kernels"]:
        raise EdgeError(f"{FOOTING} must time the shipped model and MobileNetV2 under the default kernels: "
                        "re-run the command in reports/bench/README.md")
    return {name: {k: v["median_ms"] for k, v in found[0]["invoke"].items()} for name, found in rows.items()}


def find(record: dict, word: str) -> dict | None:
    return next((c for c in record["compare"] if word in Path(c["model"]["path"]).name.lower()), None)


def block(record: dict, source: str, speeds: dict[str, dict[str, float]]) -> str:
    system, invoke = record["system"], record["invoke"]
    mobilenet, floating = find(record, "mobilenet"), find(record, "float")
    machine = f"{system['cpu']}, {system['cores']} cores ({system['machine']})"
    lines = [
        BEGIN,
        f"Measured on this development machine, **{machine}**, {record['runtime']}, "
        f"{record['kernels']} kernels, {record['threads']} threads, no delegate, {record['warmup']} warm-up then {record['runs']} timed runs "
        f"interleaved in one loop, {record['time_utc']}{_load(record)} (`{source}`, table in "
        f"`{Path(source).with_suffix('.txt')}`). Absolute times here are not board times; the ratios are what carries over.",
        "",
        "| model | input | median invoke | ratio to ours |",
        "| --- | --- | ---: | ---: |",
        f"| ours, {_kind(record['model'])} (`{Path(record['model']['path']).name}`, sha256 {record['model']['sha256'][:12]}...) "
        f"| {_input(record['model'])} | {invoke['median_ms']:.2f} ms | 1.00 |",
    ]
    for other in filter(None, (floating, mobilenet)):
        lines.append(
            f"| {'ours, float32' if other is floating else 'MobileNetV2 224, int8'} (`{Path(other['model']['path']).name}`) "
            f"| {_input(other['model'])} | {other['invoke']['median_ms']:.2f} ms | {other['ratio']:.2f} |"
        )
    lines += ["", "| measure | median | p90 | target | met |", "| --- | ---: | ---: | --- | --- |"]
    ours_over = speeds["ours"]["default"] / speeds["mobilenet"]["default"]
    lines.append(
        f"| our invoke / MobileNetV2 int8 invoke, both under the default kernels (`{FOOTING}`) | {ours_over:.2f}x | "
        f"| at most {TARGET_RATIO:.0f}x | {'yes' if ours_over <= TARGET_RATIO else '**no**'} |"
    )
    if record["end_to_end"]:
        e2e, ratio = record["end_to_end"], record["end_to_end_over_invoke"]
        lines.append(
            f"| end to end per scan (decode + check + prepare + invoke + postprocess, heat-map) | {e2e['median_ms']:.1f} ms "
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
    lines.append(END)
    return "\n".join(lines)


def _kind(model: dict) -> str:
    """How the model is quantized, from its input type: int16 input is TFLite's 16x8 mode."""
    return "16x8 (int8 weights, int16 activations)" if model["inputs"][0]["dtype"] == "int16" else "int8"


def board_records(folder: Path) -> list[tuple[str, dict]]:
    """(path as shown, record) of every edge-bench record in `folder`, read and checked: a broken
    record is an error naming it; another tool's report (its "tool" is not edge-bench) is skipped."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            tool = json.loads(path.read_text(encoding="utf-8")).get("tool")
        except (ValueError, AttributeError):
            tool = "edge-bench"  # not a JSON object: read_record says what is wrong with it
        if tool == "edge-bench":
            found.append((_shown(path), read_record(path)))
    return found


def boards_block(x86: dict, x86_source: str, records: list[tuple[str, dict]], shipped_sha256: str,
                 speeds: dict[str, dict[str, float]]) -> str:
    """The board table: this machine's row, a row per board record, an estimate per board without one."""
    begin, end = markers(BOARDS)
    lines = [
        begin,
        f"| board | measured on | runtime | invoke | end to end | a woman ({WOMAN} scans) | cold start | peak memory | model | record |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        _measured_row("development machine (not a board)", x86, x86_source, shipped_sha256),
    ]
    lines += [_measured_row(record["board_name"], record, source, shipped_sha256) for source, record in records]
    recorded = {record["device"] for _, record in records}
    estimated = [(device, anchor) for device, anchor in ESTIMATED.items() if device not in recorded]
    for device, (board, low, high) in estimated:
        config = load_device(device)
        if not config.takes(x86["model"]["inputs"][0]["dtype"]):
            lines.append(f"| {board} | **no estimate** | | | | | | | | the shipped model takes {_input(x86['model'])}; "
                         f"this board's config needs {config.input_dtype} input (an int8 model: "
                         "`edge-convert --activations int8 --edgetpu`) |")
            continue
        ours_over = speeds["ours"][config.kernels] / speeds["mobilenet"]["default"]
        published = f"{low:g} ms" if low == high else f"{low:g}-{high:g} ms"
        lines.append(
            f"| {board} | **estimate, not measured** | {config.kernels} kernels | ~{_span(low * ours_over, high * ours_over)} | "
            f"| ~{_span(WOMAN * low * ours_over, WOMAN * high * ours_over)} | | | | published MobileNetV2 int8 {published} "
            f"x {ours_over:.1f}, our invoke under the {config.kernels} kernels over MobileNetV2's under the default "
            f"ones (`{FOOTING}`) |"
        )
    if estimated:
        lines += [
            "",
            f"Median times; a woman is her {WOMAN} scans one after the other (end to end where measured, invokes where "
            "estimated). An estimate row is the published MobileNetV2 int8 time (LiteRT's default kernels, all cores) x "
            "our invoke under the kernels that board's config asks for over MobileNetV2's under the default kernels, both "
            f"measured in one loop on the development machine, and stays until a record of that board (`--device "
            f"{' / '.join(device for device, _ in estimated)}`) replaces it. A Coral estimate assumes the whole model "
            "compiles to the Edge TPU and that both models scale alike there, which a CPU ratio cannot show: take it as "
            "an order of magnitude. Our model runs on one thread where its activations are int16 or its kernels the "
            "reference ones, while MobileNetV2 runs on all of a board's cores in its published times (and on 2 threads in "
            "the loop here): on a board with more cores such an estimate is, if anything, low.",
        ]
    lines.append(end)
    return "\n".join(lines)


def _span(low_ms: float, high_ms: float) -> str:
    """A time range in the unit that reads best: 0.4-0.8 s, 95-190 ms."""
    if high_ms >= 1000:
        return f"{low_ms / 1000:.1f}-{high_ms / 1000:.1f} s" if round(low_ms, -2) != round(high_ms, -2) else f"{low_ms / 1000:.1f} s"
    return f"{low_ms:.0f}-{high_ms:.0f} ms" if round(low_ms) != round(high_ms) else f"{low_ms:.1f} ms"


def _measured_row(board: str, record: dict, source: str, shipped_sha256: str) -> str:
    system, sha = record["system"], record["model"]["sha256"]
    model = sha[:12] if sha == shipped_sha256 else f"{sha[:12]} (**not the shipped model**)"
    runtime = f"{record['runtime']}, {record['kernels']} kernels, {record['threads']} threads" + (
        f", delegate {record['delegate']}" if record["delegate"] else ""
    )
    return (
        f"| {board} | {system['cpu']}, {system['cores']} cores ({system['machine']}), {record['time_utc'][:10]} | {runtime} "
        f"| {record['invoke']['median_ms']:.1f} ms | {record['end_to_end']['median_ms']:.1f} ms "
        f"| {WOMAN * record['end_to_end']['median_ms']:.0f} ms | {record['cold_start']['median_ms']:.0f} ms | {record['peak_rss_mb']['classify_process']:.0f} MB | {model} | `{source}` |"
    )


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _load(record: dict) -> str:
    load = record.get("load_average") or {}
    if not load.get("before") or not load.get("after"):
        return ""
    return f", 1-minute load average {load['before'][0]:.1f} before and {load['after'][0]:.1f} after on {record['system']['cores']} cores"


def _input(model: dict) -> str:
    return ", ".join("x".join(map(str, i["shape"])) + " " + i["dtype"] for i in model["inputs"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_readme.py", description="The benchmark and board-table blocks of docs/benchmarks.md.")
    parser.add_argument("record", type=Path, help="this development machine's edge-bench record (reports/bench/x86.json)")
    parser.add_argument("--write", action="store_true", help="replace the blocks in the page instead of printing them")
    parser.add_argument("--records", type=Path, default=REPO / "reports" / "boards", help="folder of board records")
    parser.add_argument("--readme", type=Path, default=REPO / "docs" / "benchmarks.md", help="the page to rewrite")
    args = parser.parse_args(argv)
    try:
        x86, source = read_record(args.record), _shown(args.record)
        shipped = json.loads((REPO / "edge" / "models" / "model.json").read_text(encoding="utf-8"))["sha256"]
        speeds = footing(shipped)
        blocks = {BLOCK: block(x86, source, speeds),
                  BOARDS: boards_block(x86, source, board_records(args.records), shipped, speeds)}
        if args.write:
            def change(readme: str) -> str:
                for name, text in blocks.items():
                    readme = replace_marked(readme, name, text)
                return readme

            rewrite(args.readme, change)
        else:
            print("\n\n".join(blocks.values()))
    except (EdgeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
