"""nbgrader course built from ``notebooks/``: student versions, and an autograde round trip.

Usage:
  python tools/grading.py release [--course build/nbgrader] [--out build/student] [NB ...]
  python tools/grading.py autograde [--course build/nbgrader] [--workers N | --scheduler ADDR]
                                    [--cell-timeout S] [--memory-gib G] [--force]
                                    [--unsafe-no-sandbox]
  python tools/grading.py export [--course build/nbgrader] [--to grades.csv]
  python tools/grading.py demo    [--course build/nbgrader] [NB ...]
  python tools/grading.py validate [NB ...]

``validate`` runs ``nbgrader validate`` on each notebook with its solutions (all checks must
pass). ``release`` copies each notebook into an nbgrader course (one assignment per notebook,
named after it), runs ``nbgrader generate_assignment`` and copies the released student versions
to ``--out``; ``course_env.json`` records the data, cache and profile of that moment
(``XAI_DATA_DIR``, ``XAI_CACHE_DIR``, ``XAI_PROFILE``) as defaults for autograde.
``autograde`` grades every new or changed submission in ``<course>/submitted/`` on Dask, checks
each grade in a kernel without student code and writes feedback (:mod:`autograde`). ``export``
writes one CSV row per student and notebook with a ``status`` column: a notebook not submitted,
not yet autograded or whose grading failed has an empty score, never a 0. ``demo`` also submits
each notebook twice, as ``con_soluciones`` (with its solutions) and as ``sin_responder`` (the
released stubs), runs autograde and export and checks that the first student gets every
autograded point and the second none.
NB: notebook paths or stems (``12``); default all.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLVED, BLANK = "con_soluciones", "sin_responder"
CODE_STUB = "# TU CÓDIGO AQUÍ\nraise NotImplementedError(\"Escribe aquí tu solución\")"
TEXT_STUB = "ESCRIBE AQUÍ TU RESPUESTA"
CONFIG = f'''c = get_config()  # noqa: F821  (nbgrader's configuration object)
import os
c.CourseDirectory.course_id = "xai-cnn"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(os.path.dirname(__file__), "gradebook.db")
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
c.ClearSolutions.text_stub = {TEXT_STUB!r}
c.Execute.timeout = 1800  # per cell: some cells train a model when no checkpoint exists
# a failed check raises in the kernel (autograde gives its cell no points), see helpers.checks
os.environ["XAI_STRICT_CHECKS"] = "1"
# where the notebooks find the data and the trained models, and the sizes they run at: the
# values of `make student` (course_env.json) unless the shell that runs autograde sets them
import json
_here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_here, "course_env.json")) as _f:
    for _key, _value in json.load(_f).items():
        os.environ.setdefault(_key, _value)
'''


def select(names: list[str]) -> list[Path]:
    """Notebook paths from paths or stems; all numbered notebooks when ``names`` is empty."""
    every = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        matches = [p for p in every if p.name == Path(name).name or p.name.startswith(f"{name}_")]
        if len(matches) != 1:
            raise SystemExit(f"unknown notebook {name!r}; choose from "
                             f"{', '.join(p.stem for p in every)}")
        chosen += matches
    return chosen


def nbgrader(course: Path, *args: str, capture: bool = False, check: bool = True) -> str:
    """Run ``nbgrader`` in ``course`` (the venv's bin/ first on PATH: nbgrader calls alembic);
    ``check=False`` accepts its exit status 1 (autograde when a submission could not be graded)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               XAI_STRICT_CHECKS="1")
    command = [sys.executable, "-m", "nbgrader", *args]
    print("$ nbgrader", " ".join(args), flush=True)
    done = subprocess.run(command, cwd=course, env=env, check=check, text=True,
                          capture_output=capture)
    return done.stdout if capture else ""


def validate(notebooks: list[Path]) -> None:
    """``nbgrader validate`` each notebook with its solutions; raise if any check fails.

    nbgrader exits with 0 either way, so its report is read: it prints "Success!" per notebook.
    """
    failed = []
    for path in notebooks:
        report = nbgrader(path.parent, "validate", path.name, capture=True)
        ok = "Success! Your notebook passes all the tests." in report
        print(f"{path.stem:<40} {'validado' if ok else 'FALLA'}")
        if not ok:
            failed.append(f"{path.name}:\n{report}")
    if failed:
        raise SystemExit("nbgrader validate failed:\n" + "\n".join(failed))


def release(notebooks: list[Path], course: Path, out: Path | None) -> None:
    """A fresh course with one assignment per notebook; the student versions in ``out``."""
    shutil.rmtree(course, ignore_errors=True)
    course.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    (course / "course_env.json").write_text(json.dumps(course_environment(), indent=1))
    for path in notebooks:
        source = course / "source" / path.stem
        source.mkdir(parents=True)
        shutil.copy(path, source / path.name)
    nbgrader(course, "generate_assignment", "*", "--force")  # every assignment of the course
    for path in notebooks if out is not None else []:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(course / "release" / path.stem / path.name, out / path.name)


def course_environment() -> dict[str, str]:
    """The course's ``XAI_*`` defaults: this process's data, cache and profile."""
    sys.path.insert(0, str(ROOT))
    from helpers.data.resolve import CACHE_ENV, DATA_ENV, cache_root, data_dir
    from helpers.profile import ENV_VAR, get_profile

    return {DATA_ENV: str(data_dir()), CACHE_ENV: str(cache_root()), ENV_VAR: get_profile().name}


def autograde(course: Path, workers: int | None = None, scheduler: str | None = None,
              cell_timeout: int | None = None, memory_gib: float | None = None,
              force: bool = False, sandboxed: bool = True) -> list[dict]:
    """Grade every new or changed submission in ``course/submitted`` on Dask
    (:mod:`autograde`): a local cluster of ``workers`` processes, or ``scheduler``'s; each
    student kernel in a sandbox (:mod:`sandbox`) unless ``sandboxed`` is False."""
    import dataclasses

    import autograde as engine
    import sandbox

    if not engine.submissions(course):
        raise SystemExit(f"no submissions in {course / 'submitted'}: put each one in "
                         "submitted/<student_id>/<notebook stem>/<notebook>.ipynb")
    limits = None  # the engine's defaults, for the workers it gets
    if cell_timeout or memory_gib or not sandboxed:
        base = engine.default_limits(workers or os.cpu_count() or 1, sandboxed)
        limits = dataclasses.replace(base, cell_timeout=cell_timeout or base.cell_timeout,
                                     memory_gib=memory_gib or base.memory_gib)
    try:
        return engine.autograde(course, workers, scheduler, limits, force)
    except sandbox.SandboxMissing as err:
        raise SystemExit(str(err)) from None


STATUS = {"graded": "corregido", "manual": "falta la pregunta abierta (formgrader)",
          "pending": "entregado, sin corregir", "missing": "sin entregar",
          "failed": "la corrección falló: {reason}"}


def export(course: Path, dest: Path) -> list[dict]:
    """Grades CSV from the gradebook: nbgrader's columns plus ``status`` (:data:`STATUS`);
    a notebook not submitted or not yet autograded gets an empty score, not 0."""
    from nbgrader.api import Gradebook, MissingEntry

    rows = []
    state = json.loads(state_file.read_text()) if (
        state_file := course / ".grading" / "state.json").exists() else {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in gradebook.assignments:
            for student in gradebook.students:
                row = {"assignment": assignment.name, "student_id": student.id,
                       "last_name": student.last_name or "",
                       "first_name": student.first_name or "",
                       "timestamp": "", "score": "", "max_score": assignment.max_score}
                try:
                    sub = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    sent = (course / "submitted" / student.id / assignment.name).is_dir()
                    run = state.get(f"{student.id}/{assignment.name}", {})
                    row["status"] = STATUS["failed"].format(**run) if sent and run.get(
                        "status") == "failed" else STATUS["pending" if sent else "missing"]
                else:
                    row.update(timestamp=sub.timestamp or "", score=sub.score,
                               status=STATUS["manual" if sub.needs_manual_grade else "graded"])
                rows.append(row)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["assignment", "student_id", "last_name", "first_name",
                                    "timestamp", "score", "max_score", "status"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} filas en {dest}")
    return rows


def submit(course: Path, student: str, assignment: str, notebook: Path) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook, folder / notebook.name)
    (folder / "timestamp.txt").write_text("2026-01-01 00:00:00.000000 UTC")


def autograded_points(notebook: Path) -> float:
    """Points of the autograded (test) cells of a notebook, from its nbgrader metadata."""
    cells = json.loads(notebook.read_text())["cells"]
    return sum(c["metadata"]["nbgrader"].get("points", 0) for c in cells
               if c["metadata"].get("nbgrader", {}).get("grade")
               and not c["metadata"]["nbgrader"].get("solution"))


def demo(notebooks: list[Path], course: Path) -> list[dict]:
    """Release, submit twice, autograde, export; return the CSV rows (raises on a bad score)."""
    release(notebooks, course, None)
    (course / "students.csv").write_text(f"id\n{SOLVED}\n{BLANK}\n")
    nbgrader(course, "db", "student", "import", "students.csv")
    for path in notebooks:
        submit(course, SOLVED, path.stem, path)
        submit(course, BLANK, path.stem, course / "release" / path.stem / path.name)
    autograde(course, force=True)
    rows = export(course, course / "grades.csv")
    problems = []
    for path in notebooks:
        full = autograded_points(path)
        for row in (r for r in rows if r["assignment"] == path.stem):
            want = full if row["student_id"] == SOLVED else 0.0
            shown = f"{path.stem:<40} {row['student_id']:<16} {float(row['score']):>5.1f} / " \
                    f"{float(row['max_score']):.0f}  (autocorregible: {full:g})"
            print(shown)
            if abs(float(row["score"]) - want) > 1e-9:
                problems.append(f"{shown}: expected {want:g}")
    if problems:
        raise SystemExit("autograde round trip failed:\n" + "\n".join(problems))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action",
                        choices=["release", "autograde", "export", "demo", "validate"])
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--course", type=Path, default=ROOT / "build" / "nbgrader")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student")
    parser.add_argument("--to", type=Path, default=None,
                        help="CSV written by export (default: <course>/grades.csv)")
    parser.add_argument("--workers", type=int, default=None,
                        help="autograde: local Dask workers (default: one per core)")
    parser.add_argument("--scheduler", default=None,
                        help="autograde: address of an existing Dask scheduler (tcp://host:8786)")
    parser.add_argument("--cell-timeout", type=int, default=None,
                        help="autograde: seconds per cell (default 600)")
    parser.add_argument("--memory-gib", type=float, default=None,
                        help="autograde: memory per submission (default: 80%% of RAM / workers)")
    parser.add_argument("--force", action="store_true",
                        help="autograde: grade again the submissions already graded")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="autograde: run student kernels without the sandbox (trusted "
                             "submissions only: their code can then read the solutions)")
    args = parser.parse_args()
    notebooks = select(args.notebooks)
    if args.action == "release":
        release(notebooks, args.course.resolve(), args.out.resolve())
    elif args.action == "validate":
        validate(notebooks)
    elif args.action == "autograde":
        autograde(args.course.resolve(), args.workers, args.scheduler, args.cell_timeout,
                  args.memory_gib, args.force, not args.unsafe_no_sandbox)
    elif args.action == "export":
        export(args.course.resolve(), (args.to or args.course / "grades.csv").resolve())
    else:
        demo(notebooks, args.course.resolve())


if __name__ == "__main__":
    main()
