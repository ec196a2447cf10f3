"""The TFLite interpreter, from whichever runtime the board has, built once per run.

`ai-edge-litert` (LiteRT) is the maintained runtime; `tflite-runtime` 2.14 is the last release
of the old one and still what many Pis have. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from edge.errors import EdgeError

RUNTIMES = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}


def _import_runtime(choice: str = "auto"):
    """(Interpreter class, load_delegate, distribution name) of the runtime asked for."""
    names = list(RUNTIMES) if choice == "auto" else [choice.replace("-", "_")]
    for name in names:
        if name not in RUNTIMES:
            raise EdgeError(f"unknown runtime {choice!r}; use auto, ai_edge_litert or tflite_runtime")
        try:
            module = __import__(f"{name}.interpreter", fromlist=["Interpreter", "load_delegate"])
        except ImportError:
            continue
        return module.Interpreter, module.load_delegate, RUNTIMES[name]
    wanted = " or ".join(RUNTIMES.values()) if choice == "auto" else RUNTIMES.get(choice, choice)
    raise EdgeError(f"no TFLite runtime installed: pip install {wanted}")


def runtime_version(choice: str = "auto") -> str:
    """e.g. 'ai-edge-litert 2.3.0'."""
    from importlib import metadata  # here, not at the top: 13 ms of every edge-classify start

    _, _, distribution = _import_runtime(choice)
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return distribution


def make_interpreter(model_content: bytes, threads: int = 2, delegate: str = "", runtime: str = "auto") -> Any:
    """An allocated interpreter for `model_content`, with an optional delegate library (Edge TPU)."""
    interpreter_class, load_delegate, distribution = _import_runtime(runtime)
    delegates = [_load_delegate(load_delegate, delegate)] if delegate else []
    try:
        interpreter = interpreter_class(
            model_content=model_content, num_threads=threads, experimental_delegates=delegates or None
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgeError(f"{distribution} cannot load the model ({str(exc).strip().splitlines()[0]})") from None
    return interpreter


def _load_delegate(load_delegate, library: str) -> Any:
    """The delegate, or an EdgeError. A failed load leaves a half-built Delegate whose __del__
    raises AttributeError ("Exception ignored in ... Traceback" on stderr at exit); it is
    collected here, with that one unraisable report silenced, so the user sees one clean line."""
    import gc
    import sys

    problem = None
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        try:
            return load_delegate(library)
        except (ValueError, OSError, RuntimeError) as exc:
            problem = str(exc)
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise EdgeError(
        f"cannot load delegate {library} ({problem}); is the library installed and the "
        "accelerator plugged in? (Coral: install libedgetpu1-std and replug the USB stick)"
    )
