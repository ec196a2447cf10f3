"""Board settings: every packaged config loads, --device / --config / --threads, Coral without its
library, and the configs still load after a plain (non-editable) install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from classify_support import REPO, SHIPPED, json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from edge.inference.classifier import Classifier
from edge.cli.classify import _classifier, choose_board
from edge.inference.device import DeviceConfig, known_devices, load_config_file, load_device, parse_config
from edge.errors import EdgeError

BOARDS = {"rpi4", "rpi5", "coral-usb", "coral-devboard", "x86"}


def test_every_packaged_config_loads():
    assert BOARDS <= set(known_devices())
    assert sorted(p.stem for p in (REPO / "device_configs").glob("*.toml")) == known_devices()
    for name in known_devices():
        board = load_device(name)
        assert board.name == name and board.description
        assert board.runtime in ("auto", "ai_edge_litert", "tflite_runtime")
        assert 1 <= board.threads <= 8
        assert board.model.endswith(".tflite")
        if name.startswith("coral"):
            assert board.delegate == "libedgetpu.so.1" and board.model == "model_edgetpu.tflite"
            assert board.input_dtype == "uint8"
        else:
            assert board.delegate == "" and board.model == "model.tflite"


def test_unknown_device_lists_the_known_ones(mias_dir):
    with pytest.raises(EdgeError, match="known devices: coral-devboard, coral-usb, rpi4, rpi5, x86"):
        load_device("rpi3b")
    result = run_classify(mias_dir / "mdb005.png", "--device", "../x86")
    assert result.returncode == 2 and "unknown device" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize(
    "text, words",
    [
        ("threads = 0", "threads"),
        ("threads = 'four'", "threads"),
        ("thread = 4", "unknown keys thread"),
        ("runtime = 'tensorflow'", "runtime must be"),
        ("model = '../evil.tflite'", "model must be"),
        ("input_dtype = 'float32'", "input_dtype"),
        ("threads = [", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_refused(text, words, tmp_path):
    board = tmp_path / "board.toml"
    board.write_text(text + "\n")
    with pytest.raises(EdgeError, match=words):
        load_config_file(board)


def test_config_file_and_threads_override(model_file, tmp_path):
    board = tmp_path / "myboard.toml"
    board.write_text('description = "test board"\nthreads = 3\nruntime = "ai_edge_litert"\n')
    config = choose_board(None, board)
    assert config == DeviceConfig(name="myboard", description="test board", threads=3, runtime="ai_edge_litert")
    assert _classifier(config, model_file, None).threads == 3
    assert _classifier(config, model_file, 1).threads == 1
    with pytest.raises(EdgeError, match="device config not found"):
        load_config_file(tmp_path / "none.toml")


def test_config_file_on_the_command_line(model_file, mias_dir, tmp_path):
    board = tmp_path / "board.toml"
    board.write_text("threads = 1\n")
    result = run_classify(mias_dir / "mdb005.png", "--config", board, "--model", model_file, "--json", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["label"]


def test_the_16x8_model_on_a_coral_is_refused_with_the_fix_named(mias_dir):
    """The shipped model has int16 activations, which an Edge TPU cannot run: one line says which model to make."""
    if not SHIPPED.is_file():
        pytest.skip("no shipped model")
    result = run_classify(mias_dir / "mdb005.png", "--device", "coral-usb", "--model", SHIPPED, "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert "takes int16 input but device 'coral-usb' needs uint8" in result.stderr
    assert "edge-convert --activations int8 --edgetpu" in result.stderr
    no_traceback(result)


def test_coral_without_its_library_is_a_clear_setup_error(tiny_model_dir, mias_dir):
    """An int8 model (uint8 input, as an Edge TPU takes) on a machine without the Edge TPU library."""
    result = run_classify(mias_dir / "mdb005.png", "--device", "coral-usb", "--model", tiny_model_dir / "model.tflite", "--json")
    assert result.returncode == 2
    assert "libedgetpu.so.1" in result.stderr and "install libedgetpu1-std" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line: no 'Exception ignored' report
    no_traceback(result)
    assert result.stdout == ""


@pytest.mark.skipif((REPO / "edge" / "models" / "model_edgetpu.tflite").exists(), reason="an Edge TPU model is shipped")
def test_coral_without_a_compiled_model_says_how_to_get_one(mias_dir):
    result = run_classify(mias_dir / "mdb005.png", "--device", "coral-devboard")
    assert result.returncode == 2 and "edgetpu_compiler" in result.stderr
    no_traceback(result)


def test_a_board_that_needs_uint8_refuses_an_int8_model(model_file):
    board = parse_config('input_dtype = "int8"\n', name="odd", where="odd.toml")
    with pytest.raises(EdgeError, match="needs int8"):
        Classifier.for_board(board, model_file)


def test_configs_load_after_a_plain_install(model_file, mias_dir, tmp_path):
    """pip install --target (no editable finder, no source tree): --device reads the packaged TOML."""
    source, target = tmp_path / "src", tmp_path / "site"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("edge", "device_configs", "train", "convert"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-compile"]
    installed = subprocess.run([*pip, "--target", str(target), str(source)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)  # nothing may come from a source tree
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import edge, edge.inference.device as d; print(edge.__file__); print(' '.join(d.known_devices()))"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    where, names = probe.stdout.splitlines()
    assert where.startswith(str(target)) and set(names.split()) >= BOARDS
    args = [mias_dir / "mdb005.png", "--device", "rpi4", "--json"]
    if not SHIPPED.is_file():
        args += ["--model", model_file]
    script = target / "bin" / "edge-classify"  # the console script pip wrote: checks the entry point too
    result = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["label"]


def test_a_runtime_that_is_not_installed_is_a_setup_error(model_file, mias_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tflite_runtime") is not None:
        pytest.skip("tflite_runtime is installed here")
    board = tmp_path / "old-pi.toml"
    board.write_text('runtime = "tflite_runtime"\n')
    result = run_classify(mias_dir / "mdb005.png", "--config", board, "--model", model_file)
    assert result.returncode == 2 and "pip install tflite-runtime" in result.stderr
    no_traceback(result)
