"""The pieces of the integrity check that need no kernel: the pristine program, the suspicious
lines named in the report, the file snapshots, the merge-friendly fingerprint."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import autograde as engine  # noqa: E402
import integrity  # noqa: E402


def code(source: str, **meta) -> dict:
    return {"cell_type": "code", "id": f"c{len(source)}", "source": source, "outputs": [],
            "execution_count": None,
            "metadata": {"nbgrader": meta} if meta else {}}


def test_the_pristine_program_drops_solutions_and_stops_at_the_last_check():
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        code("x = 1"),
        code("def f(a):\n    return a + x\ny, (z, w) = 1, (2, 3)\nimport numpy as np",
             grade=False, solution=True, grade_id="ej1_solucion"),
        code("check_f('Ejercicio 1', f)", grade=True, solution=False, grade_id="ej1_comp",
             points=4),
        code("print('after the last check')")]}
    program = integrity.pristine_program(nb)
    assert [c.source for c in program.cells] == [
        "x = 1", "f = None\ny = None\nz = None\nw = None\nnp = None",
        "check_f('Ejercicio 1', f)"]
    assert integrity.defined_names("def (") == []


def test_suspicious_lines_name_each_way_of_reaching_the_grade_and_not_ordinary_code():
    cells = [code("import helpers.checks.explain as E\nimport builtins, os, sys\n"
                  "E.check_x = lambda *a: None\nbuiltins.print = p\n"
                  "sys.modules['helpers.checks'] = m\nos.environ['XAI_STRICT_CHECKS'] = '0'\n"
                  "get_ipython().input_transformers_post.append(t)\n"
                  "open('/curso/source/a.ipynb', 'w').write('')\nos.remove('x')\n",
                  grade_id="ej1_solucion", solution=True),
             code("import numpy as np\ntexto = 'a❌'.replace('❌', '✅')\n"
                  "with open('datos.csv') as f:\n    filas = f.read()\nlista = []\n"
                  "lista.remove = 3\nresultado = np.clip(x, 0, 1)\n"),
             code("check_x('Ejercicio 1', f)", grade=True, solution=False, grade_id="c")]
    found = integrity.suspicious(cells)
    assert found == [
        "celda ej1_solucion, línea 3: reasigna helpers.checks.explain.check_x",
        "celda ej1_solucion, línea 4: reasigna builtins.print",
        "celda ej1_solucion, línea 5: reasigna sys.modules['helpers.checks']",
        "celda ej1_solucion, línea 6: reasigna os.environ['XAI_STRICT_CHECKS']",
        "celda ej1_solucion, línea 7: reescribe las celdas siguientes "
        "(get_ipython().input_transformers_post)",
        "celda ej1_solucion, línea 8: escribe archivos (open)",
        "celda ej1_solucion, línea 9: borra archivos (os.remove)"]


def test_snapshots_see_changed_and_deleted_files_not_new_ones(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "big.bin").write_bytes(b"0" * (integrity.SMALL_FILE + 1))
    (tmp_path / "gone.txt").write_text("g")
    before = integrity.snapshot([tmp_path, tmp_path / "a.txt"])
    assert integrity.changed(before, integrity.snapshot([tmp_path])) == []
    (tmp_path / "a.txt").write_text("b")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "new.txt").write_text("n")
    assert integrity.changed(before, integrity.snapshot([tmp_path])) == [
        str(tmp_path / "a.txt"), str(tmp_path / "gone.txt")]


def test_fingerprints_follow_the_submission_and_the_source(tmp_path):
    sub = engine.Submission("ana", "04_x")
    for folder in ("submitted/ana/04_x", "source/04_x"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "04_x.ipynb").write_text(json.dumps({"cells": []}))
    first = engine.fingerprint(tmp_path, sub)
    assert engine.submissions(tmp_path) == [sub]
    (tmp_path / "source/04_x/04_x.ipynb").write_text(json.dumps({"cells": [1]}))
    assert engine.fingerprint(tmp_path, sub) != first
