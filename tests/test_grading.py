"""nbgrader: metadata of every exercise, check cells that show no answer, released versions
without solutions, validation (the autograde round trip is in test_autograde.py)."""

import ast
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import grading  # noqa: E402

NOTEBOOKS = grading.select([])


def cells_of(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def grading_meta(cell: dict) -> dict:
    return cell["metadata"].get("nbgrader", {})


def solution_lines(cells: list[dict]) -> list[str]:
    """The distinctive lines between BEGIN and END SOLUTION: longer than 12 characters and
    found nowhere else in the notebook (``with torch.no_grad():`` is not distinctive)."""
    inside_lines, outside = [], []
    for cell in cells:
        inside = False
        for line in source(cell).splitlines():
            if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                inside = "BEGIN" in line
            else:
                (inside_lines if inside else outside).append(line.strip())
    elsewhere = "\n".join(outside)
    return [line for line in inside_lines if len(line) > 12 and line not in elsewhere]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_every_exercise_has_nbgrader_metadata_and_the_notebook_totals_10(path):
    cells = cells_of(path)
    ids = [grading_meta(c)["grade_id"] for c in cells if grading_meta(c)]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    solutions = [i for i, c in enumerate(cells) if "### BEGIN SOLUTION" in source(c)]
    assert solutions, "every notebook has exercises"
    for i in solutions:
        assert grading_meta(cells[i]) | {"grade_id": ""} == {
            "grade": False, "solution": True, "locked": False, "schema_version": 3,
            "grade_id": ""}
        check = grading_meta(cells[i + 1])
        assert check["grade"] and check["locked"] and not check["solution"], source(cells[i + 1])
        assert check["points"] > 0
    manual = [c for c in cells if grading_meta(c).get("grade") and grading_meta(c)["solution"]]
    assert len(manual) in (1, 2) and all(c["cell_type"] == "markdown" for c in manual)
    points = sum(grading_meta(c).get("points", 0) for c in cells)
    assert points == 10
    assert all(grading_meta(c).get("locked") for c in cells
               if "## Pregunta abierta" in source(c) or source(c).startswith("## Ejercicios"))


ALLOWED_ARGS = (ast.Name, ast.Attribute, ast.Subscript, ast.Slice)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_check_cells_only_call_a_check_and_repeat_no_solution(path):
    """A check cell imports and calls ``check_*`` with the notebook's objects: the expected value
    is derived inside the check, never written or computed in the cell the student sees."""
    cells = cells_of(path)
    lines = solution_lines(cells)
    for cell in (c for c in cells if grading_meta(c).get("grade") and c["cell_type"] == "code"):
        text = source(cell)
        for line in lines:
            assert line not in text, f"solution line {line!r} in a check cell"
        for node in ast.parse(text).body:
            if isinstance(node, ast.ImportFrom):
                assert node.module.startswith("helpers.checks")
                continue
            assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Call), text
            call = node.value
            assert isinstance(call.func, ast.Name) and call.func.id.startswith("check_"), text
            exercise, *args = call.args
            assert isinstance(exercise, ast.Constant) and exercise.value.startswith("Ejercicio")
            for arg in args:  # objects of the notebook, no literal or computed answer
                assert all(isinstance(n, (*ALLOWED_ARGS, ast.Load, ast.Constant))
                           for n in ast.walk(arg)), ast.unparse(arg)
                assert not isinstance(arg, ast.Constant) or isinstance(arg.value, str), \
                    ast.unparse(arg)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    course, out = tmp_path_factory.mktemp("course"), tmp_path_factory.mktemp("student")
    grading.release(NOTEBOOKS, course, out)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_released_version_holds_no_solution_and_no_rubric(path, released):
    cells = cells_of(released / path.name)
    text = "\n".join(source(c) for c in cells)
    assert "BEGIN SOLUTION" not in text and "Criterios de corrección" not in text
    for line in solution_lines(cells_of(path)):
        assert line not in text, line
    stubs = [c for c in cells if grading_meta(c).get("solution") and c["cell_type"] == "code"]
    assert stubs and all('raise NotImplementedError("Escribe aquí tu solución")' in source(c)
                         for c in stubs)
    for cell in stubs:
        compile(source(cell), path.name, "exec")  # stubs are valid Python
    answers = [c for c in cells if grading_meta(c).get("solution") and c["cell_type"] == "markdown"]
    assert answers and all(source(c) == grading.TEXT_STUB for c in answers)
    assert all(not c.get("outputs") for c in cells)


def test_select_by_stem_and_unknown_names():
    assert [p.stem[:2] for p in grading.select(["02", "notebooks/12_mixup_y_cutmix.ipynb"])] == \
        ["02", "12"]
    with pytest.raises(SystemExit, match="unknown notebook '99'"):
        grading.select(["99"])


@pytest.mark.skipif(not os.environ.get("XAI_DATA_DIR"), reason="needs the real data")
def test_nbgrader_validate_accepts_a_solved_notebook_and_reports_a_blank_one(tmp_path):
    solved = grading.select(["12"])[0]
    grading.validate([solved])  # raises SystemExit if a check fails
    grading.release([solved], tmp_path / "course", tmp_path / "student")
    with pytest.raises(SystemExit, match="nbgrader validate failed"):
        grading.validate([tmp_path / "student" / solved.name])
    assert not list(solved.parent.glob("*.log")) and not (solved.parent / "gradebook.db").exists()
