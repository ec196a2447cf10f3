"""How much the shipped model's answers move under rounding alone: the floor under `edge-convert`'s agreement bound.

    python research/int8/int8_floor.py ../shared/mias        # about 2 minutes on the 2-core machine

Written for a model with int8 activations: its README figures are of c34699ab2231, at commit
d82f259. The shipped model now has int16 activations (TFLite's 16x8 mode), whose float and
quantized answers agree on every development scan; on it this study measures that.

The same int8 file is run on every development scan with TFLite's builtin int8 kernels (what the
heads were fitted on) and with LiteRT's XNNPACK kernels, which round some intermediate values one
step otherwise, and the float Keras network is run beside them; each scan is read alone, as the
fidelity gate reads it. Printed for each pair: how often the label agrees (and how many of the
changes are triage flips), how far the trunk's global-average features move (median over channels,
as a share of their spread across scans: a shift common to all scans and the scatter around it),
and how far the kind head's logits move against their top-2 margin. Two int8 kernel sets of one
file disagree on about one scan in five, and so do float and int8: the rounding of a 0.25-wide
MobileNet's 11 blocks, not the float reference, sets the floor.

Then two ways float and int8 could be brought together, measured against the builtin answers:
float features moved by each channel's mean int8-minus-float difference (a shift common to all
scans, measured on these same scans: an upper bound for a bias correction of the int8 model), and
the features of four copies of each scan averaged on both sides (each copy but the first moved by
one grey level at random, so that their roundings differ: what test-time averaging would give).
Last, the int8 trunk emulated in float, weights and activations rounded to the int8 model's grids
(what quantization-aware training's fake-quantized network computes): it parts from the builtin
kernels as XNNPACK does, so no float reference short of TFLite's own integer arithmetic agrees
with the int8 file more often.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from board_features import model_features


def main(data_dir: str) -> None:
    import keras

    from edge import LABELS
    from edge.inference.heads import Heads, output_names, outputs, pooled
    from edge.inference.manifest import load_manifest
    from edge.inference.reading import Reading, answer
    from train import mias, reader
    from train.data import load_dataset

    folder = Path(__file__).resolve().parents[1]
    manifest = load_manifest(folder / "edge/models/model.json")
    content = (folder / "edge/models/model.tflite").read_bytes()
    heads = Heads.from_json(manifest.heads, len(LABELS))
    reading, threshold = Reading.from_json(manifest.reading), manifest.triage_threshold
    records = mias.load(Path(data_dir))
    images = load_dataset(records, manifest.input_size).images

    positions = [manifest.outputs[name] for name in output_names(len(heads.cell_w))]  # finest first

    def int8(kernels: str, images: np.ndarray = images) -> list[np.ndarray]:
        return model_features(content, images, kernels, positions)

    network = keras.models.load_model(folder / "models/final.keras", compile=False)

    def floats(images: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(f) for f in network.predict(images[..., None].astype(np.float32), batch_size=1, verbose=0)]

    def read(scales: list[np.ndarray]) -> list:
        out = outputs(scales, heads)
        ev = reader.evidence(out)
        return [answer(reading.p_abnormal(ev[i]), out.classes[i], out.malignant[i], threshold) for i in range(len(ev))]

    features = {"builtin": int8("builtin"), "xnnpack": int8("default"), "float": floats(images)}
    answers, logits, pools = {}, {}, {}
    for name, scales in features.items():
        answers[name] = read(scales)
        pools[name] = pooled(scales)
        logits[name] = np.delete(pools[name] @ heads.classes_w + heads.classes_b, LABELS.index("NORM"), axis=1)
    average = (np.arange(pools["builtin"].shape[1]) // heads.channels) % 2 == 0
    spread = pools["builtin"][:, average].std(0) + 1e-9
    ranked = np.sort(logits["builtin"], axis=1)
    print(f"{len(images)} scans; kind logits (builtin): spread across scans {np.median(logits['builtin'].std(0)):.2f} "
          f"(median over kinds), top-2 margin median {np.median(ranked[:, -1] - ranked[:, -2]):.2f}")

    def agreement(a, b) -> str:
        return (f"label agreement {np.mean([x.label == y.label for x, y in zip(a, b)]):.3f} "
                f"({sum(x.triage != y.triage for x, y in zip(a, b))} triage flips)")

    for other in ("xnnpack", "float"):
        a, b = answers["builtin"], answers[other]
        shift = pools[other][:, average] - pools["builtin"][:, average]
        print(f"builtin vs {other}: {agreement(a, b)}, "
              f"mean |dP(abnormal)| {np.mean([abs(x.abnormal - y.abnormal) for x, y in zip(a, b)]):.4f}; "
              f"average-pooled features shift {np.median(np.abs(shift.mean(0)) / spread):.3f} and scatter "
              f"{np.median(shift.std(0) / spread):.3f} of their spread; kind logits move by a median "
              f"{np.median(np.abs(logits[other] - logits['builtin'])):.3f}")

    common = [(q - f).mean((0, 1, 2)) for q, f in zip(features["builtin"], features["float"])]
    moved = read([f + d for f, d in zip(features["float"], common)])
    print(f"float moved by each channel's mean int8 difference vs builtin: {agreement(moved, answers['builtin'])}")
    rng = np.random.default_rng(0)
    copies = [images] + [np.clip(images + rng.integers(-1, 2, images.shape) * (images > 0), 0, 255).astype(np.uint8)
                         for _ in range(3)]
    averaged = {name: [np.mean(views, axis=0) for views in zip(*map(run, copies))]
                for name, run in (("builtin", lambda x: int8("builtin", x)), ("float", floats))}
    print(f"4 copies averaged, float vs builtin: {agreement(read(averaged['float']), read(averaged['builtin']))}")

    def apart(a: list[np.ndarray], b: list[np.ndarray]) -> float:  # share of output values a step or more apart
        return float(np.mean([np.mean(np.abs(x - y) > 1e-3) for x, y in zip(a, b)]))

    emulated = int8_in_float(images, manifest.input_size)
    print(f"the int8 trunk's rounding emulated in float vs builtin: {agreement(read(emulated), answers['builtin'])}; "
          f"{apart(emulated, features['builtin']):.0%} of the output values differ (XNNPACK: "
          f"{apart(features['xnnpack'], features['builtin']):.0%})")


def int8_in_float(images: np.ndarray, size: int) -> list[np.ndarray]:
    """The trunk's cell features with weights and activations on the int8 model's grids, computed in
    float (the distillation's quantized pass, `train.distil`), at both scales; the coarse scale's
    input pooled as TFLite's int8 AVERAGE_POOL_2D pools it (on pixel - 128, halves away from zero)."""
    import tensorflow as tf

    from train import distil, reader

    tuned = distil.cached([reader.scale_images(images, f) for f in (1, 2)], [], distil.EPOCHS, 0, None)
    shifted = images.astype(np.int64) - 128
    total = shifted.reshape(len(images), size // 2, 2, size // 2, 2).sum((2, 4))
    pooled = np.where(total > 0, (total + 2) // 4, -((-total + 2) // 4)) + 128
    out = []
    for f, x in ((1, images), (2, pooled)):
        convs = distil._folded(size // f)
        for conv in convs:
            conv.kernel.assign(tuned[conv.name][0])
            conv.bias.assign(tuned[conv.name][1])
        out.append(np.concatenate([distil._forward(convs, tf.constant(x[i:i + 8, :, :, None], tf.float32), quantized=True).numpy()
                                   for i in range(0, len(x), 8)]))
    return out


if __name__ == "__main__":
    main(sys.argv[1])
