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
# Durations in whatever unit the notebooks print them and their ratios ("N veces más");
# tqdm bars (stderr) carry rates and ETAs
TIMING = re.compile(r"\d+(?:[.,]\d+)?\s*(?:ms|s|min|seg(?:undos)?|img/s|it/s|veces más)\b")
TRAINED = "Entrenamiento de "  # helpers.core.training.announce_duration: this cell trained
WARNING = re.compile(r"warn|retracing", re.I)
PROBE = """
import gc as _gc, json as _json, sys as _sys, warnings as _warnings
for _n in range(10):  # what one collection frees (weakref callbacks) may free more in the next
    if not _gc.collect():
        break
_counts = {"keras_models": 0, "torch_modules_with_hooks": 0, "torch_models": 0}
with _warnings.catch_warnings():  # isinstance on some lazy module objects warns
    _warnings.simplefilter("ignore")
    for _o in _gc.get_objects():
        if "keras" in _sys.modules and isinstance(_o, _sys.modules["keras"].Model):
            _counts["keras_models"] += 1
        elif "torch" in _sys.modules and isinstance(_o, _sys.modules["torch"].nn.Module):
            _counts["torch_models"] += type(_o).__name__ == "ResNet"
            _counts["torch_modules_with_hooks"] += bool(
                _o._forward_hooks or _o._forward_pre_hooks or _o._backward_hooks
                or getattr(_o, "_backward_pre_hooks", None))
del _o
print(_json.dumps(_counts))
"""


def normalized(outputs: list) -> list[tuple[str, str]]:
    """(kind, text) of each output with timings masked; stderr progress bars dropped."""
    rows: list[tuple[str, str]] = []
    for out in _merged_streams(outputs):
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


def _merged_streams(outputs: list) -> list:
    """Consecutive chunks of one stream as one output (the kernel splits them as it pleases)."""
    merged: list = []
    for out in outputs:
        if (out["output_type"] == "stream" and merged and merged[-1]["output_type"] == "stream"
                and merged[-1]["name"] == out["name"]):
            merged[-1] = {**merged[-1], "text": merged[-1]["text"] + out["text"]}
        else:
            merged.append(out)
    return merged


def warnings_in(outputs: list) -> list[str]:
    return [line for kind, text in normalized(outputs) for line in text.splitlines()
            if kind == "stderr" and WARNING.search(line)]


def probe(client: NotebookClient, nb) -> dict:
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    try:
        cell = client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    stdout = "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")
    return json.loads(stdout.strip().splitlines()[-1])


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


def run_all_twice(path: Path) -> list[str]:
    """Execute every code cell of ``path`` twice in one kernel; what the second pass changed.

    The first pass must also pass the nbval plugin's rule (no accepted answer printed above)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    with client.setup_kernel():
        for index, cell in code:
            client.execute_cell(cell, index)
        first = {index: copy.deepcopy(cell.outputs) for index, cell in code}
        problems = looked_up_answers(nb)
        after_first = probe(client, nb)
        for index, cell in code:
            client.execute_cell(cell, index)
        after_second = probe(client, nb)
    if after_second["torch_modules_with_hooks"]:
        problems.append(f"hooks left on {after_second['torch_modules_with_hooks']} modules")
    if after_second != after_first:
        problems.append(f"live objects after the first pass {after_first}, "
                        f"after the second {after_second}")
    for index, cell in code:
        added = [w for w in warnings_in(cell.outputs) if w not in warnings_in(first[index])]
        if added:
            problems.append(f"cell {index}: the second pass adds {added}")
        if TRAINED in output_text(first[index]):
            continue  # trained in the first pass, loaded from the cache in the second
        if normalized(cell.outputs) != normalized(first[index]):
            problems.append(f"cell {index}: the second pass prints something else\n"
                            f"first: {normalized(first[index])}\n"
                            f"second: {normalized(cell.outputs)}")
    return problems


@pytest.mark.after_notebooks
@pytest.mark.timeout(900)  # notebook 14's two passes: ~240 s on 2 cores
@pytest.mark.parametrize("name", RUN_TWICE)
def test_run_all_twice_gives_the_same_outputs(name):
    problems = run_all_twice(NOTEBOOKS / name)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_run_all_twice_catches_what_a_second_pass_changes(tmp_path):
    cells = ["import warnings, torch\ntry:\n    n += 1\nexcept NameError:\n    n = 0",
             "print(f'{n} pases, 1,5 s')",  # a timing is allowed to change, a count is not
             "if n:\n    warnings.warn('retracing')",
             "keep = globals().setdefault('keep', [])\nkeep.append(torch.nn.Linear(1, 1))\n"
             "keep[-1].register_forward_hook(lambda *a: None)\n"
             "class ResNet(torch.nn.Module): pass\nkeep.append(ResNet())",
             "print('Entrenamiento de algo' if n == 0 else 'cargado')",
             "print('igual, 0,1 s' if n == 0 else 'igual, 2,3 s')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, tmp_path / "x.ipynb")
    problems = run_all_twice(tmp_path / "x.ipynb")
    assert len(problems) == 5, problems
    assert problems[0].startswith("hooks left on 2 modules")
    assert "'torch_models': 1" in problems[1] and "'torch_models': 2" in problems[1]
    assert problems[2].startswith("cell 1: the second pass prints something else")
    assert problems[3].startswith("cell 2: the second pass adds") and "retracing" in problems[3]
    assert problems[4].startswith("cell 2: the second pass prints something else")
