"""The device package stands alone: no TensorFlow, no desktop packages (Typer included)."""

import subprocess
import sys
import textwrap

from commands import run

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "keras", "tf_keras", "sklearn", "matplotlib", "typer", "click", "train", "convert"}:
                raise ImportError(f"blocked import of {name}")
    sys.meta_path.insert(0, Block())
    """
)


def test_edge_imports_without_tensorflow():
    code = BLOCKER + textwrap.dedent(
        """
        import pkgutil, importlib, edge
        names = [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.") if m.name not in {"edge.dicom"}]
        for name in names:
            importlib.import_module(name)
        assert not any(n.split(".")[0] in {"tensorflow", "keras"} for n in sys.modules)
        print(len(names))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 4


def test_the_device_commands_parse_without_typer():
    code = BLOCKER + textwrap.dedent(
        """
        from edge.cli import build_parser
        from edge.classify_cli import build_parser as classify_parser
        build_parser().parse_args(["--runs", "3", "--compare", "a.tflite", "b.tflite"])
        classify_parser().parse_args(["scan.png", "--json"])
        from edge.report_cli import build_parser as report_parser
        report_parser().parse_args(["results.db", "--out", "report", "--since", "2026-12-01"])
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_commands_that_are_not_built_exit_cleanly():
    result = run("edge-train", "--help")
    assert result.returncode == 0 and "--data" in result.stdout


def test_train_summary_prints_the_loader_summary(mias_dir):
    result = run("edge-train", "--data", mias_dir, "--summary")
    assert result.returncode == 0, result.stderr
    assert "images    258" in result.stdout and "lesions   96 with coordinates, 3 without" in result.stdout


def test_train_on_a_missing_folder_is_one_clear_line(tmp_path):
    result = run("edge-train", "--data", tmp_path / "none", "--summary")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr


def test_the_readme_layout_names_every_top_level_folder():
    import re
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    block = readme.split("## Layout\n```\n", 1)[1].split("```", 1)[0]
    listed = {match.group(1) for match in re.finditer(r"^([\w.-]+)/", block, re.MULTILINE)}
    assert all((repo / name).is_dir() for name in listed), listed
    if shutil.which("git") is None or not (repo / ".git").exists():
        return
    tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    folders = {path.split("/")[0] for path in tracked if "/" in path}
    assert folders <= listed, f"not in the README layout: {sorted(folders - listed)}"
