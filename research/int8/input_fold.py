"""The trunk's input scaling folded into its first convolution: what it gives the int8 model.

    python research/int8/input_fold.py ../shared/mias        # about 3 minutes on the 2-core machine

The shipped trunk scales the prepared pixels with `Rescaling(1/127.5, offset=-1)`, which the int8
file computes as a MUL then an ADD and stores the product at a step of 3/255, so 256 grey levels
reach the first convolution as 171. Here the same trunk (the shipped distilled weights) reads
x - 128 instead, one ADD that int8 holds exactly (scale 1), with the 1/127.5 folded into the
first convolution's kernel and the remaining half grey level into its batch norm: the same
network but for the one-pixel border that `same` padding adds, where the padding now stands for
grey level 128 instead of 127.5. Both networks are converted as `edge-train` converts them and
read through the shipped heads (fitted on the shipped int8 features); printed for each: how far
its int8 features move from its float ones (`train.distil.drift`), and the gate's label agreement.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from board_features import model_features


def folded_trunk(size: int, tuned):
    """The trunk of `train.trunk.build(size, tuned=tuned)`, reading x - 128 with the scaling folded into conv1."""
    import keras
    from keras import layers

    from train import trunk

    inputs, cells = trunk.build(size, batch_size=1, tuned=tuned)
    reference = keras.Model(inputs, cells)
    scan = keras.Input(shape=(size, size, 1), batch_size=1, name="scan")
    centred = layers.Rescaling(1.0, offset=-128.0, name="centre")(scan)
    base = keras.applications.MobileNet(alpha=trunk.ALPHA, weights=None, include_top=False, input_tensor=centred)
    present = {layer.name for layer in reference.layers}
    for layer in base.layers:
        if layer.weights and layer.name in present:
            layer.set_weights(reference.get_layer(layer.name).get_weights())
    kernel = base.get_layer("conv1").get_weights()[0]
    base.get_layer("conv1").set_weights([kernel / 127.5])
    norm = base.get_layer("conv1_bn")
    gamma, beta, mean, variance = norm.get_weights()
    norm.set_weights([gamma, beta, mean - kernel.sum((0, 1, 2)) * 0.5 / 127.5, variance])  # (x - 127.5) = (x - 128) + 0.5
    return keras.Model(scan, base.get_layer(trunk.TAP).output)


def main(data_dir: str) -> None:
    import keras
    from keras import layers

    from train.quantizer import quantize, representative_images
    from edge import LABELS
    from edge.inference.heads import Heads, outputs
    from edge.inference.manifest import load_manifest
    from edge.inference.reading import Reading, answer
    from train import distil, mias, reader
    from train.data import load_dataset

    folder = Path(__file__).resolve().parents[1]
    manifest = load_manifest(folder / "edge/models/model.json")
    heads = Heads.from_json(manifest.heads, len(LABELS))
    reading, threshold = Reading.from_json(manifest.reading), manifest.triage_threshold
    images = load_dataset(mias.load(Path(data_dir)), manifest.input_size).images
    tuned = distil.cached([reader.scale_images(images, f) for f in (1, 2)], [], distil.EPOCHS, 0, None)

    scan = keras.Input(shape=(manifest.input_size, manifest.input_size, 1), batch_size=1, name="scan")
    scales = []
    for f in (1, 2):
        x = scan if f == 1 else layers.AveragePooling2D(f, name=f"pool{f}")(scan)
        trunk = folded_trunk(manifest.input_size // f, tuned)
        scales.append(keras.Model(trunk.inputs[0], trunk.outputs[0], name=f"trunk{f}")(x))
    networks = {"shipped": reader.build_network(manifest.input_size, (1, 2), tuned=tuned), "folded": keras.Model(scan, scales)}

    def read(features: list[np.ndarray]) -> list:
        out = outputs(features, heads)
        evidence = reader.evidence(out)
        return [answer(reading.p_abnormal(evidence[i]), out.classes[i], out.malignant[i], threshold) for i in range(len(evidence))]

    floats = {}
    for name, network in networks.items():
        floats[name] = [np.asarray(f) for f in network.predict(images[..., None].astype(np.float32), batch_size=4, verbose=0)]
        quantized = model_features(quantize(network, representative_images(images)), images)
        a, b = read(floats[name]), read(quantized)
        print(f"{name}: int8 drift from its float network {[round(distil.drift(q, f), 3) for q, f in zip(quantized, floats[name])]}, "
              f"label agreement {np.mean([x.label == y.label for x, y in zip(a, b)]):.3f} "
              f"({sum(x.triage != y.triage for x, y in zip(a, b))} triage changes)")
    change = [np.abs(a - b).max() for a, b in zip(floats["folded"], floats["shipped"])]
    print(f"the float networks differ by at most {max(change):.3f} in a cell feature (the border's padding)")


if __name__ == "__main__":
    main(sys.argv[1])
