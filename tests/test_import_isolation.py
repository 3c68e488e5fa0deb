"""The package's shape, checked structurally.

* Framework isolation: importing TensorFlow before torchvision crashes some installs, so every
  module under ``helpers.keras`` and ``helpers.core`` must run without torch, every module under
  ``helpers.torch`` and ``helpers.core`` without TensorFlow or Keras, and ``import helpers``
  imports neither. The modules are found by walking the packages, not listed by hand.
* No module, notebook, test, tool or benchmark imports a ``_``-prefixed module of another package.
* Every ``NN_name.ipynb`` that a docstring names as its lesson exists.
"""

import ast
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(helpers.__file__).parent


def modules_under(package: str) -> list[str]:
    """Every module of ``package`` (a dotted name under ``helpers``), the package included."""
    folder = PACKAGE.joinpath(*package.split(".")[1:])
    found = [package]
    for info in pkgutil.walk_packages([str(folder)], prefix=f"{package}."):
        found.append(info.name)
    return sorted(found)


def _run(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_walk_finds_the_modules():
    keras = modules_under("helpers.keras")
    assert {"helpers.keras.explain", "helpers.keras.augment", "helpers.keras.sanity"} <= set(keras)
    torch = modules_under("helpers.torch")
    assert {"helpers.torch.explain", "helpers.torch.explain.base",
            "helpers.torch.explain._grad_cam"} <= set(torch)
    assert "helpers.core.attribution" in modules_under("helpers.core")


def test_keras_and_core_modules_do_not_import_torch():
    mods = modules_under("helpers.keras") + modules_under("helpers.core")
    _run(f"import sys; import {', '.join(mods)}; "
         "assert 'torch' not in sys.modules, 'torch imported'")


def test_torch_and_core_modules_do_not_import_tensorflow_or_keras():
    mods = modules_under("helpers.torch") + modules_under("helpers.core")
    _run(f"import sys; import {', '.join(mods)}; "
         "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
         "assert not bad, f'{bad} imported'")


@pytest.mark.parametrize("module", ["helpers", "helpers.data", "helpers.profile",
                                    "helpers.checks", "helpers.plots", "helpers.tables"])
def test_light_modules_import_no_framework(module):
    _run(f"import sys, {module}; "
         "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
         "assert not bad, f'{bad} imported'")


def _python_sources() -> dict[str, str]:
    """Source text of every Python file and notebook code cell of the repository."""
    sources = {}
    for folder in ("helpers", "tests", "tools", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            sources[str(path.relative_to(ROOT))] = path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        lines = [line for cell in code for line in cell.splitlines()
                 if not line.lstrip().startswith(("!", "%"))]
        sources[str(path.relative_to(ROOT))] = "\n".join(lines)
    return sources


def _imported_modules(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _package_of(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[0] == "helpers" else ""


def test_no_private_module_is_imported_from_another_package():
    offenders = []
    for path, source in _python_sources().items():
        for name in _imported_modules(source):
            parts = name.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")
                       and not part.startswith("__") and i < len(parts)]
            for i in private:
                owner = ".".join(parts[:i])
                if (PACKAGE.parent.joinpath(*parts[:i + 1]).with_suffix(".py").is_file()
                        and _package_of(path) != owner):
                    offenders.append(f"{path}: {name}")
    assert not offenders, offenders


LESSON = re.compile(r"``(\d\d_[^`]*?)``")


def test_every_lesson_named_in_a_docstring_exists():
    notebooks = {path.name for path in (ROOT / "notebooks").glob("*.ipynb")}
    named = {}
    for path in PACKAGE.rglob("*.py"):
        for name in LESSON.findall(path.read_text()):
            named.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert named, "no lesson found: the pattern is wrong"
    missing = {name: where for name, where in named.items() if name not in notebooks}
    assert not missing, missing


def test_every_module_points_to_its_lesson():
    silent = [str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")
              if path.name != "__init__.py" or path.parent.name in ("explain", "checks")
              if "Lesson" not in (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert not silent, silent
