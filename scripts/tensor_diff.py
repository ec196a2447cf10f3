"""Which op of the model gives other numbers on another machine or runtime: every tensor compared.

    python scripts/tensor_diff.py input SCAN OUT.npy                   # the prepared model input of a scan
    python scripts/tensor_diff.py expose OUT.tflite [--model FILE]     # every op's output made a model output
    python scripts/tensor_diff.py dump EXPOSED.tflite INPUT.npy OUT.npz [--kernels builtin] [--runtime auto] [--threads 2]
    python scripts/tensor_diff.py compare A.npz B.npz                  # op by op, in execution order
    python scripts/tensor_diff.py split FOLDER [--model FILE]          # one model per op
    python scripts/tensor_diff.py isolated FOLDER A.npz OUT.npz [--kernels ...]  # each op on A's inputs
    python scripts/tensor_diff.py outputs SCANS OUT.npz [--kernels ...]  # the model's outputs, every scan

`expose` (needs ai-edge-litert's schema) writes the model (default: the packaged one) with every
op's output among the graph's outputs: the interpreter then never reuses or overwrites them.
`experimental_preserve_all_tensors` is not enough: tflite-runtime 2.14 still runs some ADD and
MUL in place, and its kept tensors then hold later values. The ops, weights and kernels are the
model's own. `dump` runs such a model on one prepared input and saves every tensor with the op
list; it needs only numpy and a TFLite runtime, so it runs inside the emulated arm64 root
(scripts/arm64_check.sh) as on a board. `compare` walks the ops in execution order and says, for each op whose output
differs, whether its inputs were already identical: such an op's kernel computes something else
for the same numbers, where the others only carry a difference from upstream. A difference
upstream hides whether the ops after it would differ too; `split` and `isolated` answer that:
each op alone as a model, run on the inputs it had in run A (the same numbers on both machines),
and `compare A.npz OUT.npz` then names every op whose kernel gives other numbers. `outputs`
runs the packaged model through `Classifier` on every mdbNNN scan of a folder and keeps its four
raw outputs; `compare` of two such files counts the scans whose outputs differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def prepared_input(scan: Path, out: Path) -> None:
    from edge.inference.classifier import Classifier
    from edge.scan.decode import read_scan

    np.save(out, Classifier().prepare(read_scan(scan)).image)


def expose(out: Path, model: Path | None) -> None:
    tree = _tree(model)
    graph = tree.subgraphs[0]
    kept = list(graph.outputs)
    graph.outputs = kept + [int(i) for op in graph.operators for i in op.outputs if i not in kept]
    _write(tree, out)


def _tree(model: Path | None):
    from convert.edgetpu import parse_model
    from edge.inference.classifier import default_model_path

    return parse_model(Path(model or default_model_path()).read_bytes())


def _write(tree, out: Path) -> None:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))


def split(folder: Path, model: Path | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    count = len(_tree(model).subgraphs[0].operators)
    for position in range(count):
        tree = _tree(model)
        graph, buffers = tree.subgraphs[0], tree.buffers
        op = graph.operators[position]
        constant = lambda i: buffers[graph.tensors[i].buffer].data is not None  # noqa: E731, B023 (used in this iteration only)
        graph.operators = [op]
        graph.inputs = [int(i) for i in op.inputs if i >= 0 and not constant(i)]
        graph.outputs = [int(i) for i in op.outputs]
        tree.signatureDefs = []
        _write(tree, folder / f"op{position:03d}.tflite")


def isolated(folder: Path, reference: Path, out: Path, kernels: str, runtime: str, threads: int) -> None:
    from edge.runtime import make_interpreter, runtime_version

    given = np.load(reference)
    about = json.loads(str(given["about"]))
    tensors = {}
    for op in about["ops"]:
        interpreter = make_interpreter((folder / f"op{op['index']:03d}.tflite").read_bytes(), threads=threads, runtime=runtime, kernels=kernels)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], given[f"t{detail['index']}"])
        interpreter.invoke()
        for index in op["outputs"]:
            tensors[f"t{index}"] = interpreter.get_tensor(index)
    for name in given.files:  # the graph input and the constants, as given
        if name != "about":
            tensors.setdefault(name, given[name])
    import platform

    about.update(runtime=runtime_version(runtime), kernels=kernels, threads=threads, machine=platform.machine(),
                 isolated=f"each op alone on the inputs of {reference.name}")
    np.savez(out, about=json.dumps(about), **tensors)


def dump(model: Path, image: Path, out: Path, kernels: str, runtime: str, threads: int) -> None:
    from edge.runtime import make_interpreter, runtime_version

    interpreter = make_interpreter(model.read_bytes(), threads=threads, runtime=runtime, kernels=kernels)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.load(image).reshape(detail["shape"]).astype(detail["dtype"]))
    interpreter.invoke()
    ops = [
        {"index": int(op["index"]), "op": op["op_name"], "inputs": [int(i) for i in op["inputs"]], "outputs": [int(i) for i in op["outputs"]]}
        for op in interpreter._get_ops_details()
    ]
    tensors = {}
    for op in ops:
        for index in op["inputs"] + op["outputs"]:
            if index >= 0 and f"t{index}" not in tensors:
                tensors[f"t{index}"] = interpreter.get_tensor(index)
    import platform

    about = {"ops": ops, "runtime": runtime_version(runtime), "kernels": kernels, "threads": threads, "machine": platform.machine()}
    np.savez(out, about=json.dumps(about), **tensors)


def outputs(folder: Path, out: Path, kernels: str, runtime: str, threads: int) -> None:
    import platform

    from edge.inference.classifier import Classifier
    from edge.scan.decode import read_scan
    from edge.runtime import runtime_version

    classifier = Classifier(threads=threads, runtime=runtime, kernels=kernels)
    scans = sorted(p for p in folder.iterdir() if p.stem.startswith("mdb") and p.suffix in (".png", ".pgm"))
    raw = {}
    for count, scan in enumerate(scans, 1):
        result = classifier.run(classifier.prepare(read_scan(scan)).image)
        for name, value in result._asdict().items():
            raw[f"{scan.stem}:{name}"] = value
        if count % 50 == 0:
            print(f"{count} of {len(scans)} scans", file=sys.stderr)
    about = {"scans": [s.stem for s in scans], "runtime": runtime_version(runtime), "kernels": kernels, "threads": threads,
             "machine": platform.machine()}
    np.savez(out, about=json.dumps(about), **raw)


def compare(first: Path, second: Path) -> int:
    a, b = np.load(first), np.load(second)
    about_a, about_b = json.loads(str(a["about"])), json.loads(str(b["about"]))
    print(f"A: {first} ({about_a['runtime']}, {about_a['kernels']} kernels, {about_a['machine']})")
    print(f"B: {second} ({about_b['runtime']}, {about_b['kernels']} kernels, {about_b['machine']}"
          + (f"; {about_b['isolated']})" if about_b.get("isolated") else ")"))
    if "scans" in about_a:
        return _compare_outputs(a, b, about_a["scans"])
    same = lambda index: index < 0 or np.array_equal(a[f"t{index}"], b[f"t{index}"])  # noqa: E731
    differing = 0
    for op in about_a["ops"]:
        output = op["outputs"][0]
        if same(output):
            continue
        differing += 1
        steps = int(np.abs(a[f"t{output}"].astype(np.int64) - b[f"t{output}"].astype(np.int64)).max())
        share = float(np.mean(a[f"t{output}"] != b[f"t{output}"]))
        if about_b.get("isolated"):
            cause = "fed A's inputs: this kernel differs"
        else:
            cause = "inputs identical: this kernel differs" if all(same(i) for i in op["inputs"]) else "an input differs"
        print(f"op {op['index']:>3} {op['op']:<24} output {output:>4}: {share:6.1%} of values differ, up to {steps} steps; {cause}")
    print(f"{differing} of {len(about_a['ops'])} ops give other outputs")
    return 1 if differing else 0


def _compare_outputs(a, b, scans: list[str]) -> int:
    names = sorted({key.split(":")[1] for key in a.files if ":" in key})
    steps = {name: [int(np.abs(a[f"{s}:{name}"].astype(int) - b[f"{s}:{name}"].astype(int)).max()) for s in scans] for name in names}
    differing = [s for i, s in enumerate(scans) if any(steps[name][i] for name in names)]
    for name in names:
        print(f"{name:<10} differs on {sum(1 for v in steps[name] if v):>3} of {len(scans)} scans, up to {max(steps[name])} steps")
    print(f"{len(differing)} of {len(scans)} scans give other outputs" + (f" (first: {', '.join(differing[:5])})" if differing else ""))
    return 1 if differing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tensor_diff.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    table = {  # name: (function, help, its file arguments, whether it runs the model)
        "input": (prepared_input, "the prepared model input of a scan", ("scan", "out"), False),
        "expose": (expose, "every op's output made a model output", ("out",), False),
        "split": (split, "one model per op", ("folder",), False),
        "dump": (dump, "every tensor of one run", ("model", "image", "out"), True),
        "isolated": (isolated, "each op alone, on the inputs it had in a dump", ("folder", "reference", "out"), True),
        "outputs": (outputs, "the model's raw outputs on every scan of a folder", ("folder", "out"), True),
        "compare": (compare, "op by op, in execution order (or scan by scan)", ("first", "second"), False),
    }
    for name, (_, text, files, runs) in table.items():
        command = commands.add_parser(name, help=text)
        for argument in files:
            command.add_argument(argument, type=Path)
        if name in ("expose", "split"):
            command.add_argument("--model", type=Path, help="default: the packaged model")
        if runs:
            command.add_argument("--kernels", default="builtin", choices=("builtin", "reference", "default"))
            command.add_argument("--runtime", default="auto")
            command.add_argument("--threads", type=int, default=2)
    args = vars(parser.parse_args(argv))
    return table[args.pop("command")][0](**args) or 0


if __name__ == "__main__":
    sys.exit(main())
