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
        names = [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.") if m.name not in {"edge.scan.dicom"}]
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
        from edge.cli.bench import build_parser
        from edge.cli.classify import build_parser as classify_parser
        build_parser().parse_args(["--runs", "3", "--compare", "a.tflite", "b.tflite"])
        classify_parser().parse_args(["scan.png", "--json"])
        from edge.cli.report import build_parser as report_parser
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


def test_the_architecture_page_layout_names_every_top_level_folder():
    import re
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    page = (repo / "docs" / "architecture.md").read_text()
    block = page.split("## Layout\n```\n", 1)[1].split("```", 1)[0]
    listed = {match.group(1) for match in re.finditer(r"^([\w.-]+)/", block, re.MULTILINE)}
    assert all((repo / name).is_dir() for name in listed), listed
    if shutil.which("git") is None or not (repo / ".git").exists():
        return
    tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    folders = {path.split("/")[0] for path in tracked if "/" in path}
    assert folders <= listed, f"not in the layout of docs/architecture.md: {sorted(folders - listed)}"


PACKAGES = ("edge", "train", "convert")
"""Each package imports only those before it: the device stands alone, training uses it, the converter uses both."""
EDGE_GROUPS = ("", "scan", "inference", "results", "report", "cli")
"""edge's folders, each importing only the ones before it ("" is edge's own modules: errors, files, words, prepare)."""


def _imports() -> dict[str, set[str]]:
    """Every module of the three packages and the modules of theirs it imports, lazy imports included."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    modules = {}
    for package in PACKAGES:
        for path in (repo / package).rglob("*.py"):
            name = ".".join(path.relative_to(repo).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found |= {target for target in targets if target in modules and target != name}
        graph[name] = found
    return graph


def test_no_import_circles():
    graph, done, path = _imports(), set(), []

    def visit(name):
        if name in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for other in sorted(graph[name]):
            visit(other)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_packages_and_edge_folders_import_one_way():
    def group(name: str) -> str:
        parts = name.split(".")
        return parts[1] if len(parts) > 2 else ""

    wrong = []
    for name, others in _imports().items():
        for other in others:
            mine, theirs = name.split(".")[0], other.split(".")[0]
            if PACKAGES.index(theirs) > PACKAGES.index(mine):
                wrong.append(f"{name} -> {other}")
            elif mine == theirs == "edge" and EDGE_GROUPS.index(group(other)) > EDGE_GROUPS.index(group(name)):
                wrong.append(f"{name} -> {other}")
    assert not wrong, wrong
