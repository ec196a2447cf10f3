"""Same scan, same decision on every runtime and kernel set: the installed `edge-classify --json` on
ai-edge-litert (its default XNNPACK kernels, the builtin ones, the reference ones) and on tflite-runtime
2.14 alone (default and builtin) reads a sample of the development scans of both sources.

Kernel sets round int8 arithmetic differently in the last bits, so answers are not bit-identical
across them; what must hold is the decision (`AGREEMENT`): the same triage on at least 99.5% of the
scans and the same label on 99%, every probability within 0.05 and the median difference at most
0.005. The whole development data is checked by `scripts/kernel_agreement.py` (reports/boards/).

The tflite-runtime side is an older Pi's install, as the docs give it: a virtual environment
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
from edge.runtime import KERNELS, make_interpreter

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


RSNA = REPO.parent / "shared" / "rsna"


@pytest.fixture(scope="module")
def scans(mias_dir) -> list[Path]:
    """26 development scans of each source, spread over them (every 10th MIAS scan, every 80th digital image)."""
    files = sorted(p for p in mias_dir.iterdir() if p.name.startswith("mdb") and p.suffix in (".png", ".pgm"))
    picked = files[::10][:26]
    if (RSNA / "images").is_dir():
        picked += sorted((RSNA / "images").iterdir())[::80][:26]
    assert len(picked) >= 24
    return picked


def _config(folder: Path, kernels: str) -> Path:
    path = folder / f"{kernels}.toml"
    path.write_text(f'description = "x86, {kernels} kernels"\nthreads = 2\nkernels = "{kernels}"\n')
    return path


def test_every_runtime_and_kernel_set_gives_the_same_decisions(scans, tmp_path):
    from convert.agreement import agreement, within_bounds

    old_pi = _old_pi_venv(_copy_of_checkout(tmp_path / "checkout"))
    who = subprocess.run(
        [str(old_pi / "python"), "-c",
         "import importlib.util as u, numpy, edge; from edge.runtime import runtime_version; "
         "print(runtime_version(), numpy.__version__, u.find_spec('ai_edge_litert') is None, edge.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
    ).stdout.split()
    assert who[:2] == ["tflite-runtime", "2.14.0"] and who[2] < "2" and who[3] == "True", who
    assert str(BOARD_VENV) in who[4], f"the old-Pi environment imports edge from {who[4]}, not its install"

    beside = Path(sys.executable).with_name("edge-classify")  # this interpreter's install, not another on PATH
    litert_script = Path(str(beside) if beside.is_file() else shutil.which("edge-classify"))
    reference = _classify(litert_script, scans, tmp_path, "--config", str(_config(tmp_path, "default")))  # XNNPACK
    assert len(reference) == len(scans) and all("error" not in r for r in reference)
    runs = {f"litert {k}": (litert_script, k) for k in ("builtin", "reference")}
    runs |= {f"tflite-runtime 2.14 {k}": (old_pi / "edge-classify", k) for k in ("default", "builtin")}
    for name, (script, kernels) in runs.items():
        records = _classify(script, scans, tmp_path, "--config", str(_config(tmp_path, kernels)))
        figures = agreement(reference, records)
        assert within_bounds(figures), (name, figures)


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
