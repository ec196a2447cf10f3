"""Same scan, same answer on every runtime: the installed `edge-classify --json` on ai-edge-litert
and on tflite-runtime 2.14 alone gives identical records for the same development scans.

The runner asks every runtime for TFLite's builtin int8 kernels without the default XNNPACK
delegate (`edge.inference.runtime`, `kernels = "builtin"` in every device config), so on this machine (x86)
the integer arithmetic is the same and the outputs are bit-identical, not merely close. On
aarch64 the two runtimes' builds are not the same code: scripts/arm64_check.sh and
reports/boards/README.md say what an emulated Pi gives.

The tflite-runtime side is an older Pi's install, as the README gives it: a virtual environment
with the package's dependencies, tflite-runtime 2.14.0 for ai-edge-litert and numpy<2, then
`pip install --no-deps` of a copy of this checkout (no ai-edge-litert in it at all). It lives in
the user's cache beside the runtimes test's environment (`~/.cache/mias-edge/`), is created on
first use (about 20 s with pip's cache) and gets the current source reinstalled on every run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.inference.device import known_devices, load_device, parse_config
from edge.errors import EdgeError
from edge.inference.runtime import KERNELS, make_interpreter

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mias-edge"
BOARD_VENV = CACHE / "venv-tflite-2.14-board"
OLD_PI = ["tflite-runtime==2.14.0", "numpy<2", "pillow>=10"]
TOP_LEVEL_SKIPPED = {".git", "build", "dist", "runs", "reports", "tests", "models", "work"}


def _copy_of_checkout(target: Path) -> Path:
    """The checkout as a user would copy it to a board (source and packaged model, no data)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info") or n.startswith(".venv")
                   or n.endswith(".pgm") or (n.startswith("mdb") and n.endswith(".png"))}
        if Path(folder).resolve() == REPO:
            skipped |= TOP_LEVEL_SKIPPED & set(names)
        return skipped

    shutil.copytree(REPO, target, ignore=ignore)
    return target


def _old_pi_venv(source: Path) -> Path:
    """bin/ of the tflite-runtime-2.14-only environment, with `source` freshly installed."""
    python = BOARD_VENV / "bin" / "python"
    ready = [str(python), "-c", "import tflite_runtime.interpreter, numpy, PIL; assert numpy.__version__ < '2'"]
    if not (python.exists() and subprocess.run(ready, capture_output=True).returncode == 0):
        print(f"creating {BOARD_VENV}: pip install {' '.join(OLD_PI)} (once)", file=sys.stderr)
        BOARD_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(BOARD_VENV)], check=True, capture_output=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *OLD_PI],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"could not install {' '.join(OLD_PI)} into {BOARD_VENV}:\n{done.stderr[-2000:]}")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip install --no-deps of the checkout failed:\n{done.stderr[-2000:]}"
    return python.parent


def _classify(script: Path, scans: list[Path], cwd: Path, *extra: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(script), "--json", *extra, *map(str, scans)], capture_output=True, text=True,
                          cwd=cwd, env={**env, "PYTHONNOUSERSITE": "1"}, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def scans(mias_dir) -> list[Path]:
    """26 development scans spread over the split (every 10th)."""
    files = sorted(p for p in mias_dir.iterdir() if p.name.startswith("mdb") and p.suffix in (".png", ".pgm"))
    picked = files[::10][:26]
    assert len(picked) >= 24
    return picked


def test_installed_edge_classify_gives_identical_answers_on_litert_and_tflite_runtime_2_14(scans, tmp_path):
    old_pi = _old_pi_venv(_copy_of_checkout(tmp_path / "checkout"))
    who = subprocess.run(
        [str(old_pi / "python"), "-c",
         "import importlib.util as u, numpy, edge; from edge.inference.runtime import runtime_version; "
         "print(runtime_version(), numpy.__version__, u.find_spec('ai_edge_litert') is None, edge.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
    ).stdout.split()
    assert who[:2] == ["tflite-runtime", "2.14.0"] and who[2] < "2" and who[3] == "True", who
    assert str(BOARD_VENV) in who[4], f"the old-Pi environment imports edge from {who[4]}, not its install"

    beside = Path(sys.executable).with_name("edge-classify")  # this interpreter's install, not another on PATH
    litert_script = str(beside) if beside.is_file() else shutil.which("edge-classify")
    litert = _classify(Path(litert_script), scans, tmp_path)
    tflite = _classify(old_pi / "edge-classify", scans, tmp_path)
    assert len(litert) == len(tflite) == len(scans)
    assert all("error" not in r for r in litert + tflite)
    differ = [a["file"] for a, b in zip(litert, tflite, strict=True) if a["probabilities"] != b["probabilities"]]
    assert not differ, f"probabilities differ between ai-edge-litert and tflite-runtime 2.14 on {len(differ)} scans: {differ[:5]}"
    assert litert == tflite  # the whole records: label, triage, heat-map peak too

    # The desktop's board config gives the same answers as the default set-up (both ask for the builtin kernels).
    assert _classify(old_pi / "edge-classify", scans[:3], tmp_path, "--device", "x86") == tflite[:3]


def test_every_device_config_records_its_kernels():
    """The Pis run the reference kernels (their answers are a desktop's with the same kernels,
    reports/boards/README.md); the desktop and the Corals' CPU fallback the builtin ones."""
    wanted = {"rpi4": "reference", "rpi5": "reference"}
    for name in known_devices():
        assert load_device(name).kernels == wanted.get(name, "builtin"), f"device_configs/{name}.toml"
    assert parse_config('kernels = "default"\n', name="fast", where="fast.toml").kernels == "default"
    assert parse_config('kernels = "reference"\n', name="same", where="same.toml").kernels == "reference"
    with pytest.raises(EdgeError, match="kernels must be one of builtin, reference, default"):
        parse_config('kernels = "xnnpack"\n', name="odd", where="odd.toml")


def test_make_interpreter_refuses_unknown_kernels():
    content = (REPO / "edge" / "models" / "model.tflite").read_bytes()
    assert KERNELS == ("builtin", "reference", "default")
    with pytest.raises(EdgeError, match="unknown kernels 'fast'; use builtin, reference, default"):
        make_interpreter(content, threads=1, kernels="fast")
