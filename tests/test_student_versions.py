"""Student versions: valid notebooks, no solution text, stubs that fail clearly."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_student  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if "### BEGIN SOLUTION" in p.read_text()]


def _solutions(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return [m.group(2) for c in cells if c["cell_type"] == "code"
            for m in make_student.BLOCK.finditer("".join(c["source"]) + "\n")]


def test_every_notebook_has_exercises():
    assert WITH_EXERCISES == NOTEBOOKS


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_student_version_has_no_solution_and_valid_stubs(path, tmp_path):
    solutions = _solutions(path)
    nb = nbformat.read(path, as_version=4)
    assert make_student.studentize(nb) == len(solutions) > 0
    nbformat.validate(nb)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and text.count(make_student.STUB) == len(solutions)
    for solution in solutions:
        for line in solution.strip().splitlines():
            if len(line.strip()) > 25:  # a distinctive solution line must be gone
                assert line.strip() not in text, line
    for cell in nb.cells:
        if cell.cell_type == "code" and make_student.STUB in cell.source:
            compile(cell.source, path.name, "exec")  # stubs are valid Python
        assert cell.get("outputs", []) == []


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_each_exercise_is_followed_by_a_check(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for i, cell in enumerate(cells):
        if "### BEGIN SOLUTION" in cell.source:
            assert "# EJERCICIO" in cell.source
            following = cells[i + 1].source if i + 1 < len(cells) else ""
            assert "check" in following, f"{path.name}: exercise without a check cell"


def test_top_level_stub_defines_names_then_raises():
    cell = "# EJERCICIO 1\n### BEGIN SOLUTION\na, b = 1, 2\nc = a + b\n### END SOLUTION\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    make_student.studentize(nb)
    scope: dict = {}
    with pytest.raises(NotImplementedError):
        exec(nb.cells[0].source, scope)
    assert scope["a"] is None and scope["c"] is None


def test_function_body_stub_raises_when_called():
    cell = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    make_student.studentize(nb)
    scope: dict = {}
    exec(nb.cells[0].source, scope)
    with pytest.raises(NotImplementedError):
        scope["f"](1)
