"""A class graded on Dask, every student kernel in the sandbox: honest submissions get the grades
of nbgrader's serial autograde, row for row; each way of forging a grade from the student's kernel
is detected and zeroed; each way of leaving the sandbox (the solutions on disk, another student's
notebook, files outside its folder, a TCP connection, a process left running, 50 MB of output, a
2 GB file) gains nothing, changes nothing and is reported; an endless, a crashing and a
memory-hungry submission fail with their reason without stopping the others; feedback for every
graded submission; a second run grades nothing. One notebook (04), twelve submissions."""

import csv
import hashlib
import json
import os
import shutil
import socket
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import autograde as engine  # noqa: E402
import grading  # noqa: E402
import integrity  # noqa: E402
import sandbox  # noqa: E402

NO_SANDBOX = sandbox.works()

pytestmark = [pytest.mark.skipif(not os.environ.get("XAI_DATA_DIR"), reason="needs the real data"),
              pytest.mark.skipif(bool(NO_SANDBOX), reason=f"no sandbox here: {NO_SANDBOX}"),
              # the class fixture: ~300 s on 2 quiet cores (it trains the fast ResNet-18 when
              # the cache is empty), twice that with another heavy job beside it
              pytest.mark.timeout(1800)]
TORCH = "04"
NB = grading.select([TORCH])[0].stem
HONEST = [grading.SOLVED, grading.BLANK]
TIMEOUT = 40  # seconds per cell: the endless submission costs one worker this long
LIMITS = engine.Limits(cell_timeout=TIMEOUT, memory_gib=4, threads=1, file_mib=256)


def tampered(release: Path, course: Path) -> dict[str, dict[str, str]]:
    """Solution cells of the forging students (notebook 04): ej1 and ej2 each forged another way,
    the functions wrong."""
    decoy = course / "release" / release.parent.name / release.name
    return {
        "t_modulos": {
            "ej1_solucion": "import helpers.checks.explain as E\n"
                            "E.check_guided_relu_rule = lambda *a, **k: None\n"
                            "def regla_guiada(z, g):\n    return None\n",
            "ej2_solucion": "import sys, types\n"
                            "sys.modules['helpers.checks.explain'] = types.SimpleNamespace(\n"
                            "    check_guided_grad_cam_product=lambda *a, **k: None)\n"
                            "mi_ggc = None\n"},
        "t_builtins": {
            "ej1_solucion": "import builtins\n_real = builtins.__import__\n"
                            "class _Fake:\n    def __init__(self, m):\n        self.m = m\n"
                            "    def __getattr__(self, name):\n"
                            "        if name == 'check_guided_relu_rule':\n"
                            "            return lambda *a, **k: None\n"
                            "        return getattr(self.m, name)\n"
                            "def _import(name, *args, **kwargs):\n"
                            "    module = _real(name, *args, **kwargs)\n"
                            "    return _Fake(module) if name == 'helpers.checks.explain' "
                            "else module\n"
                            "builtins.__import__ = _import\n"
                            "def regla_guiada(z, g):\n    return g\n",
            "ej2_solucion": "def _sin_errores(lines):\n"
                            "    if any('check_' in line for line in lines):\n"
                            "        return (['try:\\n'] + ['    ' + line for line in lines]\n"
                            "                + ['\\nexcept Exception:\\n    pass\\n'])\n"
                            "    return lines\n"
                            "get_ipython().input_transformers_post.append(_sin_errores)\n"
                            "mi_ggc = 0\n"},
        "t_salida": {
            "ej1_solucion": "import os, sys\nos.environ['XAI_STRICT_CHECKS'] = '0'\n"
                            "class _Ok:\n    def write(self, s):\n"
                            "        return sys.__stdout__.write(s.replace('❌', '✅'))\n"
                            "    def flush(self):\n        pass\n"
                            "sys.stdout = _Ok()\n"
                            "def regla_guiada(z, g):\n    return z\n",
            "ej2_solucion": f"with open({str(decoy)!r}, 'a') as f:\n    f.write(' ')\n"
                            "mi_ggc = 1\n"},
    }


FAILING = {  # first solution cell
    "cuelgue": "while True:\n    pass\n",
    "caida": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "memoria": "import numpy as np\nbloques = []\nwhile True:\n"
               "    bloques.append(np.ones(2**24))\n",
}
RIGHT_RULE = "def regla_guiada(z, g):\n    return g.clamp(min=0) * (z > 0)\n"
WRONG_RULE = "def regla_guiada(z, g):\n    return g\n"
MARK = "xai-sandbox-test-marker"  # in the command line of the background process


def escapes(course: Path, port: int) -> dict[str, dict[str, str]]:
    """Solution cells that try to leave the sandbox, each with an answer to fall back on."""
    steal = textwrap.dedent("""\
        import json, os, pathlib
        try:
            cells = json.loads(pathlib.Path({path!r}).read_text())["cells"]
            exec(next("".join(c["source"]) for c in cells if {name!r} in "".join(c["source"])))
        except Exception as err:
            print("no pude:", err)
        try:  # where the scratch course keeps them
            print(os.listdir(pathlib.Path.cwd().parents[2] / "source"))
        except OSError as err:
            print("no pude:", err)
        """)
    solutions = str(course / "source" / NB / f"{NB}.ipynb")
    other = str(course / "submitted" / grading.SOLVED / NB / f"{NB}.ipynb")
    return {
        # the solutions, then another student's notebook: the right fallback still gets 0
        "s_lee": {"ej1_solucion": steal.format(path=solutions, name="def regla_guiada")
                  + "if 'regla_guiada' not in globals():\n"
                  + textwrap.indent(WRONG_RULE, "    "),
                  "ej2_solucion": steal.format(path=other, name="mi_ggc =")
                  + "mi_ggc = gbp[0] * cam[0]\n"},
        "s_escribe": {"ej1_solucion": textwrap.dedent(f"""\
            for path in [{str(course / "nota.txt")!r}, {str(ROOT / "helpers" / "trampa.py")!r}]:
                try:
                    open(path, "w").write("x")
                except OSError as err:
                    print(err)
            """) + WRONG_RULE, "ej2_solucion": textwrap.dedent(f"""\
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"x")
            except OSError as err:
                print(err)
            mi_ggc = None
            """)},
        "s_fondo": {"ej1_solucion": textwrap.dedent(f"""\
            import subprocess, sys
            later = "import time; time.sleep(60); open({str(course / "gradebook.db")!r}, 'w')"
            subprocess.Popen([sys.executable, "-c", later, "{MARK}"], start_new_session=True)
            """) + WRONG_RULE, "ej2_solucion": "print('x' * 50_000_000)\nmi_ggc = None\n"},
        "s_archivo": {"ej1_solucion": textwrap.dedent("""\
            with open("grande.bin", "wb") as f:
                for _ in range(2048):
                    f.write(bytes(1 << 20))
            """) + WRONG_RULE},
    }


def submit_edited(course: Path, student: str, release: Path, sources: dict[str, str]) -> None:
    nb = json.loads(release.read_text())
    for cell in nb["cells"]:
        grade_id = integrity.nbgrader_meta(cell).get("grade_id")
        if grade_id in sources:
            cell["source"] = sources[grade_id]
    edited = course / "edited" / student / release.name
    edited.parent.mkdir(parents=True, exist_ok=True)
    edited.write_text(json.dumps(nb))
    grading.submit(course, student, release.parent.name, edited)


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it gets."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port, self.connections = self.server.getsockname()[1], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                self.server.accept()[0].close()
            except OSError:
                return
            self.connections += 1


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The class graded on Dask, after nbgrader's serial autograde of the honest submissions in
    a second course (which also trains the model an empty cache lacks, with every thread)."""
    course, serial = tmp_path_factory.mktemp("clase"), tmp_path_factory.mktemp("serie")
    notebooks = grading.select([TORCH])
    grading.release(notebooks, course, None)
    grading.release(notebooks, serial, None)
    path, release = notebooks[0], course / "release" / NB / f"{NB}.ipynb"
    for target in (course, serial):
        grading.submit(target, grading.SOLVED, NB, path)
        grading.submit(target, grading.BLANK, NB, release)
    grading.nbgrader(serial, "autograde", "*", "--force")
    listener = Listener()
    for student, sources in tampered(release, course).items():
        submit_edited(course, student, release, sources)
    for student, code in FAILING.items():
        submit_edited(course, student, release, {"ej1_solucion": code})
    for student, sources in escapes(course, listener.port).items():
        submit_edited(course, student, release, sources)
    before, environ = digest(course / "submitted"), dict(os.environ)
    kept = {name: digest(course / name) for name in ("source", "release")} | {
        "helpers": digest(ROOT / "helpers")}
    results = engine.autograde(course, workers=2, limits=LIMITS)
    return {"course": course, "serial": serial, "notebooks": notebooks, "results": results,
            "before": before, "environ": environ == dict(os.environ), "kept": kept,
            "connections": listener.connections,
            "rows": grading.export(course, course / "grades.csv"),
            "serial_rows": grading.export(serial, serial / "grades.csv")}


def report(course: Path) -> dict:
    """The integrity report's lines by (student, exercise); the "*" lines of one student joined."""
    lines: dict = {}
    for r in csv.DictReader((course / "integrity.csv").open()):
        key = (r["student"], r["exercise"])
        if key in lines:
            r = r | {"detected": f"{lines[key]['detected']}; {r['detected']}"}
        lines[key] = r
    return lines


def scores(rows: list[dict]) -> dict:
    return {(r["assignment"][:2], r["student_id"]): r for r in rows}


def test_honest_submissions_get_exactly_the_serial_grades(graded_class):
    want, got = scores(graded_class["serial_rows"]), scores(graded_class["rows"])
    assert len(want) == 2
    for key, row in want.items():
        assert got[key] == row, key
    for student in HONEST:
        sub = engine.Submission(student, NB)
        assert engine.read_rows(graded_class["course"] / "gradebook.db", sub) == \
            engine.read_rows(graded_class["serial"] / "gradebook.db", sub)
    assert got[(TORCH, grading.SOLVED)]["score"] == 8
    assert got[(TORCH, grading.BLANK)]["score"] == 0
    lines = report(graded_class["course"])
    assert not any(student in HONEST for student, _ in lines), "an honest one was reported"


def test_the_blank_submission_fails_its_first_exercise_in_spanish(graded_class):
    graded = graded_class["course"] / "autograded" / grading.BLANK / NB / f"{NB}.ipynb"
    cells = json.loads(graded.read_text())["cells"]
    first = next(c for c in cells if integrity.is_check(c)
                 and any(o["output_type"] == "error" for o in c.get("outputs", [])))
    assert integrity.nbgrader_meta(first)["grade_id"] == "ej1_comprobacion"
    error = next(o for o in first["outputs"] if o["output_type"] == "error")
    assert (error["ename"], error["evalue"]) == (
        "ExerciseError", "Ejercicio 1: la función aún no está implementada.")


def test_each_forged_grade_is_zeroed_and_reported(graded_class):
    course = graded_class["course"]
    got, lines = scores(graded_class["rows"]), report(course)
    for student in ("t_modulos", "t_builtins", "t_salida"):
        assert got[(TORCH, student)]["score"] == 0, student
    expected = {("t_modulos", "ej1_comprobacion"): "reasigna helpers.checks.explain.check_guided",
                ("t_modulos", "ej2_comprobacion"): "reasigna sys.modules",
                ("t_builtins", "ej1_comprobacion"): "reasigna builtins.__import__",
                ("t_builtins", "ej2_comprobacion"): "input_transformers_post",
                ("t_salida", "ej1_comprobacion"): "reasigna os.environ"}
    for key, named in expected.items():
        line = lines[key]
        assert float(line["nbgrader"]) == 4 and float(line["verified"]) == 0, line
        assert named in line["detected"] and "sys.stdout" in lines[("t_salida",
                                                                    "ej1_comprobacion")]["detected"]
        assert "❌" in line["replay"], line
    # the write into the course's release folder: refused by the sandbox, its exercise zeroed
    write = lines[("t_salida", "ej2_comprobacion")]
    assert "intentó escribir" in write["detected"] and "release" in write["detected"], write
    # the student's feedback shows the pristine verdict, not the forged one
    html = (course / "feedback" / "t_modulos" / NB / f"{NB}.html").read_text()
    assert "❌ Ejercicio 1" in html and "✅ Ejercicio 1" not in html


def test_no_way_out_of_the_sandbox_gains_a_point_or_changes_anything(graded_class):
    course, kept = graded_class["course"], graded_class["kept"]
    got = scores(graded_class["rows"])
    for student in ("s_lee", "s_escribe", "s_fondo"):
        assert got[(TORCH, student)]["score"] == 0, (student, got[(TORCH, student)])
    assert got[(TORCH, "s_archivo")]["score"] == ""  # its kernel was stopped: a failed grading
    assert {n: digest(course / n) for n in ("source", "release")} == {
        n: kept[n] for n in ("source", "release")}
    assert digest(ROOT / "helpers") == kept["helpers"]
    assert not (course / "nota.txt").exists() and not (ROOT / "helpers" / "trampa.py").exists()
    assert digest(course / "submitted") == graded_class["before"]
    assert graded_class["connections"] == 0
    assert not [p for p in psutil.process_iter(["cmdline"]) if MARK in (p.info["cmdline"] or [])]
    engine.read_rows(course / "gradebook.db", engine.Submission(grading.SOLVED, NB))  # intact


def test_each_attempt_is_reported_with_the_student_and_what_happened(graded_class):
    lines = report(graded_class["course"])
    source, other = f"source/{NB}/{NB}.ipynb", f"submitted/{grading.SOLVED}/{NB}"
    expected = {  # (student, exercise): what the line says
        ("s_lee", "ej1_comprobacion"): ["intentó leer", source, "intentó leer", "/source"],
        ("s_lee", "ej2_comprobacion"): ["intentó leer", other],
        ("s_escribe", "ej1_comprobacion"): ["intentó escribir", "nota.txt", "trampa.py"],
        ("s_escribe", "ej2_comprobacion"): ["intentó conectarse a 127.0.0.1"],
        ("s_fondo", "*"): ["dejó un proceso en marcha", MARK, "límite de salida"],
        ("s_archivo", "*"): ["límite de tamaño de archivo (256 MiB)"],
    }
    for key, words in expected.items():
        assert key in lines, (key, sorted(lines))
        for word in words:
            assert word in lines[key]["detected"], (key, word, lines[key]["detected"])
    # the right fallback after a refused read of another student's notebook still gets 0
    assert float(lines[("s_lee", "ej2_comprobacion")]["nbgrader"]) == 4
    assert float(lines[("s_lee", "ej2_comprobacion")]["verified"]) == 0
    graded = graded_class["course"] / "autograded" / "s_fondo" / NB / f"{NB}.ipynb"
    assert graded.stat().st_size < 2 * LIMITS.output_mib * 1e6


def test_failures_are_recorded_with_their_reason_and_stop_nothing(graded_class):
    rows = scores(graded_class["rows"])
    reasons = {"cuelgue": f"superó el tiempo por celda ({TIMEOUT} s)", "caida": "el kernel murió",
               "memoria": "límite de memoria (4 GiB)", "s_archivo": "el kernel murió"}
    for student, reason in reasons.items():
        row = rows[(TORCH, student)]
        assert row["score"] == "" and row["status"].startswith("la corrección falló"), row
        assert reason in row["status"], row
    times = list(csv.DictReader((graded_class["course"] / "grading_times.csv").open()))
    assert [(int(r["submissions"]), int(r["failed"])) for r in times] == [(12, 4)]


def test_feedback_for_every_graded_submission_and_environment_kept(graded_class):
    course = graded_class["course"]
    graded = [r for r in graded_class["results"] if r["status"] == "graded"]
    assert len({(r["student"], r["assignment"]) for r in graded}) == 8
    for r in graded:
        html = next((course / "feedback" / r["student"] / r["assignment"]).glob("*.html"))
        assert "Ejercicio 1" in html.read_text()
    assert graded_class["environ"], "Dask's OMP_NUM_THREADS=1 leaked into this process"


def test_a_second_run_grades_only_what_changed(graded_class):
    course = graded_class["course"]
    assert engine.autograde(course, workers=2, limits=LIMITS) == []
    sub = engine.Submission(grading.SOLVED, NB)
    before = engine.fingerprint(course, sub)
    stamp = course / "submitted" / sub.student / sub.assignment / "timestamp.txt"
    original = stamp.read_text()
    stamp.write_text("2026-01-02 00:00:00.000000 UTC")
    assert engine.fingerprint(course, sub) != before
    stamp.write_text(original)
    assert engine.fingerprint(course, sub) == before


def test_without_bubblewrap_autograde_refuses_naming_the_package(graded_class, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit, match=r"install the `bubblewrap` package.*--unsafe-no-sandbox"):
        grading.autograde(graded_class["course"], workers=1, force=True)


def test_export_tells_missing_and_pending_from_graded(graded_class, tmp_path):
    """A student who submitted nothing and one not autograded yet: an empty score with its
    status, never a 0 that reads like a grade."""
    from helpers.data import resolve

    course = tmp_path / "copia"
    shutil.copytree(graded_class["course"], course)
    (course / "students.csv").write_text("id\nausente\nen_cola\n")
    grading.nbgrader(course, "db", "student", "import", "students.csv")
    path = graded_class["notebooks"][0]
    grading.submit(course, "en_cola", path.stem, path)
    status = {(r["assignment"][:2], r["student_id"]): (r["score"], r["status"])
              for r in grading.export(course, course / "grades.csv")}
    assert status[(TORCH, "ausente")] == ("", "sin entregar")
    assert status[(TORCH, "en_cola")] == ("", "entregado, sin corregir")
    assert status[(TORCH, grading.SOLVED)] == (8.0, "falta la pregunta abierta (formgrader)")
    env = json.loads((course / "course_env.json").read_text())
    assert env["XAI_DATA_DIR"] == str(resolve.data_dir())
    # a new version whose grading fails keeps no grade of the old one
    sub = engine.Submission(grading.SOLVED, path.stem)
    state = json.loads((course / ".grading" / "state.json").read_text())
    state[sub.key] |= {"status": "failed", "reason": "una celda superó el tiempo por celda"}
    (course / ".grading" / "state.json").write_text(json.dumps(state))
    engine.forget(course, sub, {})
    status = {(r["assignment"][:2], r["student_id"]): (r["score"], r["status"])
              for r in grading.export(course, course / "grades.csv")}
    assert status[(TORCH, grading.SOLVED)] == (
        "", "la corrección falló: una celda superó el tiempo por celda")
    assert not (course / "feedback" / sub.student / sub.assignment).exists()
