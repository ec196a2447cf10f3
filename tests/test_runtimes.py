"""The shipped int8 model gives the same outputs in ai-edge-litert 2.x and in tflite-runtime 2.14.0.

tflite-runtime 2.14.0 (the last release, still what many Pis have) needs numpy<2, so it runs in
its own virtual environment: `.venv-tflite/` in the repository (git-ignored), created on first
use with `pip install tflite-runtime==2.14.0 "numpy<2" pillow` and reused afterwards. Set
TFLITE_RUNTIME_PYTHON to a Python that already has tflite-runtime to skip the creation.
Both sides go through `edge.runtime.make_interpreter`, as the board does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.manifest import load_manifest, read_verified_model
from edge.runtime import make_interpreter, runtime_version

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "edge" / "models" / "model.tflite"
VENV = REPO / ".venv-tflite"
REQUIREMENTS = ["tflite-runtime==2.14.0", "numpy<2", "pillow"]

RUNNER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from edge.manifest import load_manifest, read_verified_model
    from edge.runtime import make_interpreter, runtime_version
    model, manifest_path, images_path, out_path = sys.argv[1:5]
    content = read_verified_model(load_manifest(manifest_path), model)
    interpreter = make_interpreter(content, threads=1, runtime="tflite_runtime")
    (inp,) = interpreter.get_input_details()
    results = []
    for image in np.load(images_path):
        interpreter.set_tensor(inp["index"], image[None, :, :, None].astype(inp["dtype"]))
        interpreter.invoke()
        results.append([interpreter.get_tensor(d["index"]).tolist() for d in interpreter.get_output_details()])
    json.dump({"runtime": runtime_version("tflite_runtime"), "numpy": np.__version__, "outputs": results}, open(out_path, "w"))
    """
)


def _tflite_runtime_python() -> Path:
    given = os.environ.get("TFLITE_RUNTIME_PYTHON")
    if given:
        return Path(given)
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import tflite_runtime.interpreter, numpy; assert numpy.__version__ < '2'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, capture_output=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"could not install {' '.join(REQUIREMENTS)} into {VENV}:\n{done.stderr[-2000:]}")
    return python


@pytest.fixture(scope="module")
def model_under_test(tiny_model_dir) -> Path:
    """The shipped model when there is one (what the boards run), else the tiny test model."""
    return SHIPPED if SHIPPED.is_file() and SHIPPED.with_suffix(".json").is_file() else tiny_model_dir / "model.tflite"


def test_litert_and_tflite_runtime_2_14_agree_within_one_step(model_under_test, records, tmp_path):
    from edge.preprocess import prepare

    manifest = load_manifest(model_under_test.with_suffix(".json"))
    images = np.stack([prepare(r.pixels(), size=manifest.input_size).image for r in records[::43]])  # 6 scans
    assert images.dtype == np.uint8 and len(images) >= 5
    np.save(tmp_path / "images.npy", images)

    interpreter = make_interpreter(read_verified_model(manifest, model_under_test), threads=1, runtime="ai_edge_litert")
    (inp,) = interpreter.get_input_details()
    assert inp["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)  # prepared pixels go in as they are
    litert = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None, :, :, None])
        interpreter.invoke()
        litert.append([interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()])

    python = _tflite_runtime_python()
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(
        [str(python), str(tmp_path / "runner.py"), str(model_under_test), str(model_under_test.with_suffix(".json")),
         str(tmp_path / "images.npy"), str(tmp_path / "out.json")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, f"tflite-runtime 2.14.0 cannot run {model_under_test.name}:\n{done.stderr[-3000:]}"
    other = json.loads((tmp_path / "out.json").read_text())
    assert other["runtime"] == "tflite-runtime 2.14.0" and other["numpy"] < "2"
    assert runtime_version("ai_edge_litert").startswith("ai-edge-litert 2.")

    largest = 0
    for ours, theirs in zip(litert, other["outputs"]):
        assert len(ours) == len(theirs) == 4
        for a, b in zip(ours, theirs):
            b = np.asarray(b)
            assert a.shape == b.shape
            largest = max(largest, int(np.max(np.abs(a.astype(int) - b.astype(int)))))
    print(f"{model_under_test}: largest difference between runtimes: {largest} quantization step(s)")
    assert largest <= 1, f"outputs differ by {largest} quantization steps between ai-edge-litert and tflite-runtime 2.14"
