"""Committed notebooks: numbered, without outputs, and starting the same way."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_numbered_notebooks():
    assert NOTEBOOKS and all(p.name[:2].isdigit() and p.name[2] == "_" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(_code_cells(path)) if c["outputs"] or c["execution_count"]]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_starts_with_bootstrap_then_setup(path):
    cells = _code_cells(path)
    first = "".join(cells[0]["source"])
    second = "".join(cells[1]["source"])
    assert 'find_spec("helpers")' in first and "XAI_REPO_URL" in first
    assert "setup(" in second, f"{path.name}: the second code cell must call helpers' setup()"


def test_bootstrap_cell_is_identical_everywhere():
    firsts = {"".join(_code_cells(p)[0]["source"]) for p in NOTEBOOKS}
    assert len(firsts) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_set_up_cells_are_folded(path):
    """The course site (``hide-input``) and JupyterLab (``source_hidden``) fold the bootstrap and
    setup cells; their outputs (the run's banner) stay visible."""
    for cell in _code_cells(path)[:2]:
        assert "hide-input" in cell["metadata"].get("tags", []), path.name
        assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True, path.name
