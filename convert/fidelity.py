"""How far the int8 model strays from the float one, scan by scan, and whether that is acceptable.

Both models see the same prepared images. Compared: the top-1 class (agreement and the
confusion between the two), P(abnormal) (largest and mean absolute difference), the
normal-vs-abnormal ROC AUC of each against the MIAS labels, and, for the record, P(malignant)
and the heat-map. The scans are the development split, which the final model was trained on
and the int8 model calibrated on: this measures what quantization loses, not how well
either model generalises (that is the cross-validation's job).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge import LABELS
from edge.inference.classifier import Result
from edge.fileio import atomic_write_text
from edge.preprocess import Prepared

DISCLAIMER = "Research software, not a medical device."


def class_scores(result: Result) -> np.ndarray:
    """The 7 class probabilities of a Result, in MIAS order."""
    return np.array([result.probabilities[name] for name in LABELS], dtype=np.float32)


@dataclass
class Fidelity:
    """The comparison over all scans, and the verdict against the thresholds."""

    ids: list[str]
    abnormal_truth: list[int]
    float_outputs: list[Result]  # the float model's outputs through the board's postprocess
    int8_outputs: list[Result]  # the int8 model in the board's Classifier
    min_agreement: float
    max_auc_drop: float
    figures: dict[str, Any] = field(default_factory=dict)
    extra_failures: list[str] = field(default_factory=list)  # found elsewhere (another kernel set)

    def __post_init__(self) -> None:
        self.figures = _figures(self)

    @property
    def failures(self) -> list[str]:
        found = []
        agreement = self.figures["top1_agreement"]
        if agreement < self.min_agreement:
            found.append(f"top-1 agreement {agreement:.3f} is under {self.min_agreement:.3f}")
        drop = self.figures["auc_drop"]
        if drop is not None and drop > self.max_auc_drop:
            found.append(f"normal-vs-abnormal AUC drops by {drop:.3f} (float {self.figures['auc_float']:.3f}, "
                         f"int8 {self.figures['auc_int8']:.3f}), more than {self.max_auc_drop:.3f}")
        return found + self.extra_failures

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.figures,
            "thresholds": {"min_agreement": self.min_agreement, "max_auc_drop": self.max_auc_drop},
            "passed": self.passed,
            "failures": self.failures,
        }

    def rows_csv(self) -> str:
        """One row per scan: truth, both models' top-1 class, P(abnormal), P(malignant)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "abnormal_truth", "float_class", "int8_class", "float_abnormal", "int8_abnormal",
                         "float_malignant", "int8_malignant"])
        for i, image_id in enumerate(self.ids):
            f, q = self.float_outputs[i], self.int8_outputs[i]
            writer.writerow([image_id, self.abnormal_truth[i], f.label, q.label, f"{f.abnormal:.6f}", f"{q.abnormal:.6f}",
                             f"{f.malignant:.6f}", f"{q.malignant:.6f}"])
        return out.getvalue()


def _auc(truth: Sequence[int], scores: Sequence[float]) -> float | None:
    from train.metrics import auc

    value = auc(np.asarray(truth), np.asarray(scores))
    return None if np.isnan(value) else value


def _figures(fid: Fidelity) -> dict[str, Any]:
    f_top = np.array([LABELS.index(o.label) for o in fid.float_outputs])
    q_top = np.array([LABELS.index(o.label) for o in fid.int8_outputs])
    f_ab = np.array([o.abnormal for o in fid.float_outputs])
    q_ab = np.array([o.abnormal for o in fid.int8_outputs])
    f_mal = np.array([o.malignant for o in fid.float_outputs])
    q_mal = np.array([o.malignant for o in fid.int8_outputs])
    class_diff = np.array([np.max(np.abs(class_scores(f) - class_scores(q)))
                           for f, q in zip(fid.float_outputs, fid.int8_outputs)])
    heat_diff = np.array([np.max(np.abs(f.heatmap - q.heatmap)) for f, q in zip(fid.float_outputs, fid.int8_outputs)])
    heat_peak_same = np.array(
        [np.argmax(f.heatmap) == np.argmax(q.heatmap) for f, q in zip(fid.float_outputs, fid.int8_outputs)]
    )
    # A float top-2 margin under one uint8 step (1/256) cannot survive quantization intact:
    # agreement on the scans with a clearer margin separates real drift from near-ties.
    margins = np.array([np.diff(np.sort(class_scores(o))[-2:])[0] for o in fid.float_outputs])
    clear = margins > 1.0 / 256
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for a, b in zip(f_top, q_top):
        confusion[a, b] += 1
    auc_float, auc_int8 = _auc(fid.abnormal_truth, f_ab), _auc(fid.abnormal_truth, q_ab)
    worst = int(np.argmax(np.abs(f_ab - q_ab)))
    return {
        "scans": len(fid.ids),
        "top1_agreement": float(np.mean(f_top == q_top)),
        "top1_agreement_clear_margin": float(np.mean(f_top[clear] == q_top[clear])) if clear.any() else None,
        "scans_with_clear_margin": int(clear.sum()),
        "top1_disagreements": [fid.ids[i] for i in np.nonzero(f_top != q_top)[0]],
        "abnormal_abs_diff_max": float(np.max(np.abs(f_ab - q_ab))),
        "abnormal_abs_diff_mean": float(np.mean(np.abs(f_ab - q_ab))),
        "abnormal_abs_diff_worst_scan": fid.ids[worst],
        "malignant_abs_diff_max": float(np.max(np.abs(f_mal - q_mal))),
        "malignant_abs_diff_mean": float(np.mean(np.abs(f_mal - q_mal))),
        "class_probability_abs_diff_max": float(np.max(class_diff)),
        "heatmap_abs_diff_max": float(np.max(heat_diff)),
        "heatmap_peak_same_cell": float(np.mean(heat_peak_same)),
        "auc_float": auc_float,
        "auc_int8": auc_int8,
        "auc_drop": None if auc_float is None or auc_int8 is None else float(auc_float - auc_int8),
        "abnormal_scans": int(np.sum(fid.abnormal_truth)),
        "confusion_float_rows_int8_columns": {
            "labels": list(LABELS),
            "matrix": confusion.tolist(),
        },
    }


def compare(
    ids: Sequence[str],
    abnormal_truth: Sequence[int],
    scans: Sequence[Prepared],
    run_float: Callable[[Prepared], Result],
    run_int8: Callable[[Prepared], Result],
    min_agreement: float = 0.97,
    max_auc_drop: float = 0.02,
    progress: Callable[[int], None] | None = None,
) -> Fidelity:
    """Run both models on every prepared scan and compare their Results."""
    float_outputs, int8_outputs = [], []
    for prepared in scans:
        float_outputs.append(run_float(prepared))
        int8_outputs.append(run_int8(prepared))
        if progress:
            progress(1)
    return Fidelity(list(ids), [int(v) for v in abnormal_truth], float_outputs, int8_outputs, min_agreement, max_auc_drop)


def compare_kernels(default: Sequence[Result], builtin: Sequence[Result], threshold: float,
                    step: float = 1.0 / 256) -> dict[str, Any]:
    """The same int8 model's Results under LiteRT's default XNNPACK kernels and under TFLite's builtin
    int8 kernels (what the device configs ask for): how far rounding alone moves the answers.
    `threshold` is the manifest's triage threshold the Results were triaged at (for the record)."""
    largest, abnormal_diffs, top_same, triage_same = 0.0, [], 0, 0
    for a, b in zip(default, builtin, strict=True):
        top_same += int(a.label == b.label)
        triage_same += int(a.triage == b.triage)
        abnormal_diffs.append(abs(a.abnormal - b.abnormal))
        largest = max(largest, float(np.max(np.abs(class_scores(a) - class_scores(b)))), abs(a.abnormal - b.abnormal),
                      abs(a.malignant - b.malignant), float(np.max(np.abs(a.heatmap - b.heatmap))))
    n = max(len(default), 1)
    return {
        "scans": len(default),
        "top1_agreement": top_same / n,
        "triage_agreement": triage_same / n,
        "triage_threshold": threshold,
        "abnormal_abs_diff_max": float(max(abnormal_diffs, default=0.0)),
        "largest_output_difference_steps": int(round(largest / step)),
    }


def report_markdown(fid: Fidelity, context: dict[str, Any], readiness_text: str) -> str:
    """The human-readable report: figures, verdict, confusion, what was converted and how."""
    f = fid.figures
    q = "16x8" if context.get("activations") == "int16" else "int8"  # how this report names the quantized model
    verdict = "PASSED" if fid.passed else "FAILED: " + "; ".join(fid.failures)

    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [
        f"# Quantization fidelity report ({q})",
        "",
        f"**{DISCLAIMER}** These figures compare the {q} model with the float model it came from;",
        "they say nothing about clinical accuracy.",
        "",
        f"- Model: `{context.get('model', '?')}` (sha256 of the Keras file `{str(context.get('source_sha256', '?'))[:16]}...`)",
        f"- {q} model: `{context.get('model_file', 'model.tflite')}`, sha256 `{context.get('sha256', '?')}`, "
        f"{context.get('size_bytes', 0) / 1024:.0f} KiB",
        f"- Scans: all {f['scans']} development scans ({f['abnormal_scans']} abnormal), prepared by "
        f"`edge.preprocess.prepare(scan, size={context.get('input_size', '?')})`",
        f"- Calibration: {context.get('calibration', '?')}",
        f"- Quantization: int8 weights, {context.get('activations', 'int8')} activations"
        + (" (TFLite's 16x8 mode)" if q == "16x8" else ""),
        f"- Converter: {context.get('converter', '?')}; runtime used here: {context.get('runtime', '?')}",
        f"- Command: `{context.get('command', '?')}`",
        *[f"- Graph rewrite before quantization (same float function, checked on scans): {r}"
          for r in context.get("graph_rewrites", [])],
        "",
        *([f"Note: {context['note']}", ""] if context.get("note") else []),
        f"## Verdict: {verdict}",
        "",
        f"Thresholds: top-1 agreement at least {fid.min_agreement:.3f}, AUC drop at most {fid.max_auc_drop:.3f}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| top-1 agreement (7 classes) | {num(f['top1_agreement'])} ({len(f['top1_disagreements'])} scan(s) differ) |",
        f"| top-1 agreement where the float top-2 margin exceeds 1/256 (one uint8 step) | {num(f['top1_agreement_clear_margin'])} "
        f"({f['scans_with_clear_margin']} scans) |",
        f"| max abs. difference of P(abnormal) | {num(f['abnormal_abs_diff_max'], 4)} (scan {f['abnormal_abs_diff_worst_scan']}) |",
        f"| mean abs. difference of P(abnormal) | {num(f['abnormal_abs_diff_mean'], 4)} |",
        f"| normal-vs-abnormal ROC AUC, float | {num(f['auc_float'])} |",
        f"| normal-vs-abnormal ROC AUC, {q} | {num(f['auc_int8'])} |",
        f"| AUC drop (float - {q}) | {num(f['auc_drop'])} |",
        f"| max / mean abs. difference of P(malignant) | {num(f['malignant_abs_diff_max'], 4)} / {num(f['malignant_abs_diff_mean'], 4)} |",
        f"| max abs. difference of any class probability | {num(f['class_probability_abs_diff_max'], 4)} |",
        f"| max abs. difference of a heat-map cell | {num(f['heatmap_abs_diff_max'], 4)} |",
        f"| heat-map peak in the same cell | {num(f['heatmap_peak_same_cell'])} |",
        "",
        "AUCs are against the MIAS labels (NORM vs the six abnormal classes) on scans the final model",
        "was trained on: they show what quantization changes, not how well the model generalises.",
        "",
        f"## Top-1 class: float (rows) vs {q} (columns)",
        "",
        f"| float \\ {q} | " + " | ".join(LABELS) + " |",
        "| --- |" + " --- |" * len(LABELS),
    ]
    matrix = f["confusion_float_rows_int8_columns"]["matrix"]
    for label, row in zip(LABELS, matrix):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    if f["top1_disagreements"]:
        lines += ["", "Scans whose top-1 class differs: " + ", ".join(f["top1_disagreements"])]
    kernels = context.get("kernels")
    if kernels:
        lines += [
            "",
            f"## The same {q} model under two kernel sets",
            "",
            "Above: TFLite's builtin kernels, what the heads were fitted on and what the desktop and Coral configs",
            "ask for (for an int8 model the Pis' reference kernels differ from them on a few scans: reports/boards/README.md).",
            "LiteRT hands int8 ops to its XNNPACK delegate by default, which rounds otherwise (a 16x8 model's int16 ops",
            "stay on TFLite's own code); XNNPACK against builtin:",
            "",
            "| figure | value |",
            "| --- | --- |",
            f"| largest difference of any output | {kernels['largest_output_difference_steps']} quantization step(s) |",
            f"| max abs. difference of P(abnormal) | {num(kernels['abnormal_abs_diff_max'], 4)} |",
            f"| top-1 agreement | {num(kernels['top1_agreement'])} |",
            f"| same triage at threshold {kernels['triage_threshold']:.3f} | {num(kernels['triage_agreement'])} |",
        ]
        other = kernels.get("xnnpack_vs_float")
        if other:
            lines += [
                "",
                f"Float vs {q} under XNNPACK (LiteRT run without a device config), same thresholds: "
                f"top-1 agreement {num(other['top1_agreement'])}, max / mean abs. difference of P(abnormal) "
                f"{num(other['abnormal_abs_diff_max'], 4)} / {num(other['abnormal_abs_diff_mean'], 4)}, "
                f"AUC {q} {num(other['auc_int8'])} (drop {num(other['auc_drop'])}): "
                + ("passed." if other["passed"] else "FAILED: " + "; ".join(other["failures"]) + "."),
            ]
    lines += ["", f"## Edge TPU readiness (offline check of the {q} file)", "", "```", readiness_text, "```", ""]
    extra = context.get("runtime_versions_note")
    if extra:
        lines += [extra, ""]
    return "\n".join(lines)


def write_report(folder: str | Path, fid: Fidelity, context: dict[str, Any], readiness: dict, readiness_text: str) -> None:
    """fidelity.json, fidelity.md and fidelity_scans.csv in `folder`."""
    folder = Path(folder)
    document = {"disclaimer": DISCLAIMER, "context": context, "fidelity": fid.to_dict(), "edgetpu_readiness": readiness}
    atomic_write_text(folder / "fidelity.json", json.dumps(document, indent=2) + "\n")
    atomic_write_text(folder / "fidelity.md", report_markdown(fid, context, readiness_text))
    atomic_write_text(folder / "fidelity_scans.csv", fid.rows_csv())
    from convert.quantize import readable

    readable(folder / "fidelity.json", folder / "fidelity.md", folder / "fidelity_scans.csv")
