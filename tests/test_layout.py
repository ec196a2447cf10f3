"""The device package stands alone: no TensorFlow, no desktop packages."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "keras", "tf_keras", "sklearn", "matplotlib", "train", "convert"}:
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


def test_commands_that_are_not_built_exit_cleanly():
    result = subprocess.run(["edge-train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--data" in result.stdout


def test_train_summary_prints_the_loader_summary(mias_dir):
    result = subprocess.run(["edge-train", "--data", str(mias_dir), "--summary"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "images    258" in result.stdout and "lesions   96 with coordinates, 3 without" in result.stdout


def test_train_on_a_missing_folder_is_one_clear_line(tmp_path):
    result = subprocess.run(["edge-train", "--data", str(tmp_path / "none"), "--summary"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
