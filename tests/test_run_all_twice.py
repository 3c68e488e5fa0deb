""""Run All" twice in one kernel: the second pass prints what the first printed, adds no warning,
keeps no extra model alive and leaves no hook behind (one notebook per track).

These notebooks are executed here instead of by nbval (``tests/nbval_answers.py`` leaves them out
of the ``notebooks`` collection), so each costs one extra pass, not two: the first pass is their
nbval run (any error fails; a graded check cell must not accept a value printed above it). The
test runs after every notebook (the plugin orders it last), with the caches they filled; a cell
that trained in the first pass and loads the checkpoint in the second is the one difference
allowed besides timings.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbval_answers import RUN_TWICE, answer_shown, appears_in, output_text

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 900
# Durations in whatever unit the notebooks print them; tqdm bars (stderr) carry rates and ETAs
TIMING = re.compile(r"\d+(?:[.,]\d+)?\s*(?:ms|s|min|seg(?:undos)?|img/s|it/s)\b")
TRAINED = "Entrenamiento de "  # helpers.core.training.announce_duration: this cell trained
WARNING = re.compile(r"warn|retracing", re.I)
PROBE = """
import gc as _gc, json as _json, sys as _sys
_gc.collect()
_counts = {"keras_models": 0, "torch_modules_with_hooks": 0, "torch_models": 0}
for _o in _gc.get_objects():
    if "keras" in _sys.modules and isinstance(_o, _sys.modules["keras"].Model):
        _counts["keras_models"] += 1
    elif "torch" in _sys.modules and isinstance(_o, _sys.modules["torch"].nn.Module):
        _counts["torch_models"] += type(_o).__name__ == "ResNet"
        _counts["torch_modules_with_hooks"] += bool(
            _o._forward_hooks or _o._forward_pre_hooks or _o._backward_hooks
            or getattr(_o, "_backward_pre_hooks", None))
print(_json.dumps(_counts))
"""


def normalized(outputs: list) -> list[tuple[str, str]]:
    """(kind, text) of each output with timings masked; stderr progress bars dropped."""
    rows = []
    for out in outputs:
        if out["output_type"] == "stream":
            text = out["text"]
            if out["name"] == "stderr":  # keep only lines that are not a progress bar
                text = "\n".join(line for line in re.split(r"[\r\n]", text)
                                 if line.strip() and "it/s]" not in line and "%|" not in line)
                if not text:
                    continue
            rows.append((out["name"], TIMING.sub("<t>", text)))
        elif out["output_type"] in ("execute_result", "display_data"):
            data = out.get("data", {})
            kinds = sorted(k for k in data if k != "application/vnd.jupyter.widget-view+json")
            text = data.get("text/plain", "") if "image/png" not in data else ""
            if kinds:
                rows.append(("+".join(kinds), TIMING.sub("<t>", text)))
    return rows


def warnings_in(outputs: list) -> list[str]:
    return [line for kind, text in normalized(outputs) for line in text.splitlines()
            if kind == "stderr" and WARNING.search(line)]


def probe(client: NotebookClient, nb) -> dict:
    cell = nbformat.v4.new_code_cell(PROBE)
    client.execute_cell(cell, len(nb.cells))
    return json.loads(output_text(cell.outputs).strip().splitlines()[-1])


def looked_up_answers(nb) -> list[str]:
    """The nbval plugin's rule on the first pass: accepted values printed earlier."""
    problems, seen = [], []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        text = output_text(cell.outputs)
        grading = cell.metadata.get("nbgrader", {})
        shown = answer_shown(text) if grading.get("grade") and not grading.get("solution") else None
        if shown and any(appears_in(shown[1], earlier) for earlier in seen):
            problems.append(f"cell {index}: {shown[0]} accepts {shown[1]}, printed above")
        seen.append(text)
    return problems


@pytest.mark.after_notebooks
@pytest.mark.parametrize("name", RUN_TWICE)
def test_run_all_twice_gives_the_same_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    with client.setup_kernel():
        for index, cell in code:
            client.execute_cell(cell, index)
        first = {index: copy.deepcopy(cell.outputs) for index, cell in code}
        after_first = probe(client, nb)
        assert not looked_up_answers(nb), looked_up_answers(nb)
        for index, cell in code:
            client.execute_cell(cell, index)
        after_second = probe(client, nb)

    assert after_first["torch_modules_with_hooks"] == 0, after_first
    assert after_second == after_first, (
        f"live objects after the first pass {after_first}, after the second {after_second}")
    for index, cell in code:
        added = [w for w in warnings_in(cell.outputs) if w not in warnings_in(first[index])]
        assert not added, f"{name}, cell {index}: the second pass adds {added}"
        if TRAINED in output_text(first[index]):
            continue  # trained in the first pass, loaded from the cache in the second
        assert normalized(cell.outputs) == normalized(first[index]), (
            f"{name}, cell {index}: the second pass prints something else\n"
            f"first: {normalized(first[index])}\nsecond: {normalized(cell.outputs)}")
