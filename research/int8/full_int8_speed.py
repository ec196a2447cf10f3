"""Study: how fast is the shipped network in full int8 (int8 activations, uint8 input) under LiteRT's default kernels?

    python research/int8/full_int8_speed.py ../shared/mias OUT_DIR
    python scripts/bench_reference.py mobilenet --data ../shared/mias --out OUT_DIR/mobilenetv2_int8.tflite
    printf 'description = "x86, LiteRT default kernels"\\nthreads = 2\\nkernels = "default"\\n' > OUT_DIR/default.toml
    edge-bench --config OUT_DIR/default.toml --compare OUT_DIR/trunk_int8.tflite OUT_DIR/mobilenetv2_int8.tflite \\
        --runs 60 --warmup 10 --cold-runs 0 --schedule interleaved

Builds the shipped network (`train.reader.build_network`: the trunk at 512 and 256 pixels, the
distilled weights; timing does not depend on them) and converts it with int8 activations
(`train.quantizer.quantize`, 40 development scans as calibration). Then `edge-bench` times the
shipped 16x8 model, this int8 network and MobileNetV2-224 int8 in one interleaved loop, under
LiteRT's default kernels (XNNPACK), 2 threads. Output: full_int8_speed.txt.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(data: str, out: str) -> None:
    from train import records, reader, tuned_cv
    from train.data import load_dataset
    from train.quantizer import quantize

    scans = load_dataset(records.load(data)[:40], 512)
    network = reader.build_network(512, (1, 2), tuned=tuned_cv.base_weights())
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "trunk_int8.tflite").write_bytes(quantize(network, scans.images, "int8"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
