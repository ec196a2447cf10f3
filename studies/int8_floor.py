"""How much the shipped model's answers move under rounding alone: the floor under `edge-convert`'s agreement bound.

    python studies/int8_floor.py ../shared/mias        # about 30 seconds on the 2-core machine

The same int8 file is run on every development scan with TFLite's builtin int8 kernels (what the
heads were fitted on) and with LiteRT's XNNPACK kernels, which round some intermediate values one
step otherwise, and the float Keras network is run beside them; each scan is read alone, as the
fidelity gate reads it. Printed for each pair: how often the label agrees (and how many of the
changes are triage flips), how far the trunk's global-average features move (median over channels,
as a share of their spread across scans: a shift common to all scans and the scatter around it),
and how far the kind head's logits move against their top-2 margin. Two int8 kernel sets of one
file disagree on about one scan in six, float and int8 on one in four: the rounding of a 0.25-wide
MobileNet's 11 blocks, not the float reference, sets the floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(data_dir: str) -> None:
    import keras

    from edge import LABELS
    from edge.classifier import Quantization
    from edge.heads import Heads, output_names, outputs, pooled
    from edge.manifest import load_manifest
    from edge.reading import Reading, answer
    from edge.runtime import make_interpreter
    from train import mias, reader
    from train.data import load_dataset

    folder = Path(__file__).resolve().parents[1]
    manifest = load_manifest(folder / "edge/models/model.json")
    content = (folder / "edge/models/model.tflite").read_bytes()
    heads = Heads.from_json(manifest.heads, len(LABELS))
    reading, threshold = Reading.from_json(manifest.reading), manifest.triage_threshold
    records = mias.load(Path(data_dir))
    images = load_dataset(records, manifest.input_size).images

    def int8(kernels: str) -> list[np.ndarray]:
        interpreter = make_interpreter(content, threads=2, kernels=kernels)
        index = interpreter.get_input_details()[0]["index"]
        every = interpreter.get_output_details()
        details = [every[manifest.outputs[name]] for name in output_names(len(heads.cell_w))]  # finest first
        out = [np.zeros((len(images), *d["shape"][1:]), np.float32) for d in details]
        for i, image in enumerate(images):
            interpreter.set_tensor(index, image[None, :, :, None])
            interpreter.invoke()
            for k, d in enumerate(details):
                out[k][i] = Quantization.of(d).dequantize(interpreter.get_tensor(d["index"]))[0]
        return out

    network = keras.models.load_model(folder / "models/final.keras", compile=False)
    features = {
        "builtin": int8("builtin"),
        "xnnpack": int8("default"),
        "float": [np.asarray(f) for f in network.predict(images[..., None].astype(np.float32), batch_size=1, verbose=0)],
    }
    answers, logits, pools = {}, {}, {}
    for name, scales in features.items():
        out = outputs(scales, heads)
        ev = reader.evidence(out)
        answers[name] = [answer(reading.p_abnormal(ev[i]), out.classes[i], out.malignant[i], threshold)
                         for i in range(len(images))]
        pools[name] = pooled(scales)
        logits[name] = np.delete(pools[name] @ heads.classes_w + heads.classes_b, LABELS.index("NORM"), axis=1)
    average = (np.arange(pools["builtin"].shape[1]) // heads.channels) % 2 == 0
    spread = pools["builtin"][:, average].std(0) + 1e-9
    ranked = np.sort(logits["builtin"], axis=1)
    print(f"{len(images)} scans; kind logits (builtin): spread across scans {np.median(logits['builtin'].std(0)):.2f} "
          f"(median over kinds), top-2 margin median {np.median(ranked[:, -1] - ranked[:, -2]):.2f}")
    for other in ("xnnpack", "float"):
        a, b = answers["builtin"], answers[other]
        same = np.mean([x.label == y.label for x, y in zip(a, b)])
        triage = sum(x.triage != y.triage for x, y in zip(a, b))
        shift = pools[other][:, average] - pools["builtin"][:, average]
        print(f"builtin vs {other}: label agreement {same:.3f} ({triage} triage flips), "
              f"mean |dP(abnormal)| {np.mean([abs(x.abnormal - y.abnormal) for x, y in zip(a, b)]):.4f}; "
              f"average-pooled features shift {np.median(np.abs(shift.mean(0)) / spread):.3f} and scatter "
              f"{np.median(shift.std(0) / spread):.3f} of their spread; kind logits move by a median "
              f"{np.median(np.abs(logits[other] - logits['builtin'])):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
