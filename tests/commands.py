"""How every test launches a project command: in a subprocess, as the person at the board or
desktop runs it, through the console script that pip installed beside this Python.

Without that script (a copy not installed), the same entry point runs in this Python, read from
the installed metadata, so both ways start the same function.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path


def command(name: str, *args: object) -> list[str]:
    """The argv that runs console script `name` (edge-classify, edge-bench, edge-convert, edge-train)."""
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script), *map(str, args)]
    (entry,) = entry_points(group="console_scripts", name=name)
    module, function = entry.value.split(":")
    return [sys.executable, "-c", f"from {module} import {function}; {function}()", *map(str, args)]


def run(name: str, *args: object, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """Run command `name` with `args`, capturing its text output."""
    return subprocess.run(command(name, *args), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
