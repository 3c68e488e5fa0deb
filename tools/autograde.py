"""Autograde a whole class: one task per (student, notebook) on Dask, grades checked in a pristine
kernel, failures isolated, then merged into the course's gradebook. Used by ``tools/grading.py``.

Each task works in its own copy of the course (SQLite takes one writer): ``nbgrader autograde``
runs the submission with the answers recorded (:mod:`helpers.checks.record`), a memory watchdog
and a per-cell timeout; :func:`integrity.replay` recomputes every check from those answers
without student code; an exercise keeps the lower of the two scores, and a submission that
changed files it must not touch gets no autograded points. The main process merges each result
into ``gradebook.db`` (so ``nbgrader export``, ``formgrader`` and ``generate_feedback`` work as
after a serial autograde), copies the autograded notebook and its feedback, and keeps
``<course>/.grading/state.json`` so a new run grades only what is missing or changed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import integrity
import sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE = ".grading"


@dataclass(frozen=True)
class Limits:
    """Per submission: seconds per cell, memory of the grading processes, threads per kernel;
    the sandbox of its kernel (:mod:`sandbox`) with its limits on processes (threads count),
    file size, ``/tmp`` and the notebook's output."""

    cell_timeout: int = 600
    memory_gib: float = 8.0
    threads: int = 1
    sandbox: bool = True
    processes: int = 1024
    file_mib: int = 1024
    tmp_mib: int = 2048
    output_mib: float = 5.0

    @property
    def total_timeout(self) -> int:  # a notebook of many slow cells still ends
        return 20 * self.cell_timeout

    @property
    def cpu_seconds(self) -> int:  # of the sandboxed kernel: its total timeout on every thread
        return self.total_timeout * max(1, self.threads)


@dataclass(frozen=True, order=True)
class Submission:
    student: str
    assignment: str

    @property
    def key(self) -> str:
        return f"{self.student}/{self.assignment}"


def submissions(course: Path) -> list[Submission]:
    """Every ``submitted/<student>/<assignment>/`` folder with a notebook."""
    return sorted(Submission(p.parent.parent.name, p.parent.name)
                  for p in (course / "submitted").glob("*/*/*.ipynb"))


def fingerprint(course: Path, sub: Submission) -> str:
    """Hash of the submitted files and of the instructor's version: what a grade depends on."""
    digest = hashlib.sha256()
    for folder in (course / "submitted" / sub.student / sub.assignment,
                   course / "source" / sub.assignment):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- one task


def grade(course: str, sub: Submission, source: dict, template: str, limits: Limits,
          protected: list[str], env: dict[str, str]) -> dict:
    """Grade one submission in a scratch copy of the course; return what the merge needs."""
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"xai-grade-{sub.student}-{sub.assignment}-"))
    try:
        result = _grade_in(Path(course), sub, source, Path(template), limits,
                           [Path(p) for p in protected], env, work)
    except Exception as err:  # a task never takes the run down: it reports why it failed
        result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"student": sub.student, "assignment": sub.assignment,
            "seconds": round(time.monotonic() - started, 1), "report": [], **result}


def _grade_in(course: Path, sub: Submission, source: dict, template: Path, limits: Limits,
              protected: list[Path], env: dict[str, str], work: Path) -> dict:
    copy, name = work / "course", _notebook_name(course, sub)
    if not (course / "submitted" / sub.student / sub.assignment / name).exists():
        return {"status": "failed", "reason": f"la entrega no contiene {name} (¿se renombró?)"}
    _scratch_course(course, sub, source, template, copy, name)
    answers, audit = work / "answers", work / "audit.log"
    answers.mkdir()
    kernel_env = env | _thread_env(limits.threads) | {
        integrity.RECORD_ENV: str(answers), "XAI_STRICT_CHECKS": "1"}
    jail_env, options = {}, []
    if limits.sandbox:
        spec = _jail(env, answers, audit, limits, hidden=[course, work])
        jail_env, options = sandbox.install_kernel(work / "jail", spec)
    before = integrity.snapshot(protected)
    ok, reason, log = run_limited(
        [sys.executable, "-m", "nbgrader", "autograde", sub.assignment, "--student",
         sub.student, "--force", f"--Execute.timeout={limits.cell_timeout}", *options],
        copy, kernel_env | jail_env, limits)
    touched = integrity.changed(before, integrity.snapshot(protected))
    graded = copy / "autograded" / sub.student / sub.assignment / name
    if "Timeout waiting for execute reply" in log:  # nbgrader interrupted the cell, went on
        ok, reason = False, f"una celda superó el tiempo por celda ({limits.cell_timeout} s)"
    escapes = _escapes(sandbox.events(audit), limits)
    if graded.exists() and _cap_output(graded, limits.output_mib):
        escapes.append({"what": f"superó el límite de salida ({limits.output_mib:g} MB): "
                                "salida recortada", "cell": None})
    if not ok or not graded.exists():
        return {"status": "failed", "reason": reason or _reason_from(log),
                "report": _files_report(sub, touched) + _escape_report(sub, escapes, {}),
                "touched": touched}
    verdicts = integrity.replay(source, answers, work / "replay", kernel_env,
                                limits.cell_timeout)  # the instructor's code: no sandbox
    submitted = json.loads(graded.read_text())
    pristine = {integrity.cell_text(c) for c in source["cells"]}
    fed = _exercises(submitted["cells"], escapes)
    report = _verify(copy / "gradebook.db", sub, name, verdicts, submitted, touched, pristine,
                     fed) + _escape_report(sub, escapes, fed)
    _show_verified_outputs(graded, verdicts)
    ok, reason, log = run_limited(
        [sys.executable, "-m", "nbgrader", "generate_feedback", sub.assignment, "--student",
         sub.student, "--force"], copy, env, limits)
    return {"status": "graded", "reason": "" if ok else f"sin informe: {_reason_from(log)}",
            "report": report, "touched": touched, "rows": read_rows(copy / "gradebook.db", sub),
            "files": _files(copy, sub)}


def _jail(env: dict[str, str], answers: Path, audit: Path, limits: Limits,
          hidden: list[Path]) -> dict:
    """The sandbox of one submission's kernel: the package, data and models read-only; its
    answers folder writable (its own folder is added when the kernel starts there)."""
    from helpers.data.resolve import CACHE_ENV, DATA_ENV, cache_root, data_dir

    cache = Path(env.get(CACHE_ENV) or cache_root())
    readable = [ROOT / "helpers", Path(env.get(DATA_ENV) or data_dir()), cache]
    return sandbox.spec_for(readable, [answers], audit,
                            cpu_seconds=limits.cpu_seconds,
                            processes=limits.processes, file_mib=limits.file_mib,
                            tmp_mib=limits.tmp_mib, hidden=[*hidden, ROOT, Path.home()],
                            quiet=[cache])


ESCAPES = {"read": "intentó leer {path}, que no ve desde su entorno aislado",
           "write": "intentó escribir {path}, fuera de su carpeta",
           "network": "intentó conectarse a {address} (sin red en el entorno aislado)",
           "left_running": "dejó un proceso en marcha al terminar el kernel (eliminado): {command}"}
LIMITS = {"cpu": "superó el límite de tiempo de CPU ({cpu} s): kernel detenido",
          "file_size": "superó el límite de tamaño de archivo ({file} MiB): kernel detenido"}


def _escapes(events: list[dict], limits: Limits) -> list[dict]:
    """The sandbox's audit events as report texts in Spanish, each with its cell number."""
    out = {}
    for event in events:
        if event["event"] == "limit":
            text = LIMITS.get(event.get("what"), "superó un límite: {what}").format(
                cpu=limits.cpu_seconds, file=limits.file_mib, what=event.get("what"))
        elif event["event"] in ESCAPES:
            text = ESCAPES[event["event"]].format_map(
                {"path": "?", "address": "?", "command": "?"}
                | {k: str(v)[:200] for k, v in event.items()})
        else:
            continue
        out[text, event.get("cell")] = {"what": text, "cell": event.get("cell")}
    return list(out.values())


def _exercises(cells: list[dict], escapes: list[dict]) -> dict[str, list[str]]:
    """Per check cell (grade id), what was tried in its exercise: in its own cell or in any
    cell after the previous check (the exercise's solution and what it runs)."""
    by_count = {c.get("execution_count"): i for i, c in enumerate(cells)
                if c["cell_type"] == "code" and c.get("execution_count")}
    fed: dict[str, list[str]] = {}
    for escape in escapes:
        start = by_count.get(escape["cell"])
        if start is None:
            continue
        check = next((c for c in cells[start:] if integrity.is_check(c)), None)
        if check is not None:
            fed.setdefault(integrity.nbgrader_meta(check)["grade_id"], []).append(escape["what"])
    return fed


def _escape_report(sub: Submission, escapes: list[dict], fed: dict[str, list[str]]) -> list[dict]:
    """Report lines of the attempts to leave the sandbox not tied to a zeroed exercise."""
    tied = {what for whats in fed.values() for what in whats}
    loose = dict.fromkeys(e["what"] for e in escapes if e["what"] not in tied)
    return [{"student": sub.student, "assignment": sub.assignment, "exercise": "*",
             "nbgrader": "", "verified": "", "replay": "",
             "detected": f"entorno aislado: {what}"} for what in loose]


def _cap_output(graded: Path, megabytes: float) -> bool:
    """Cut each output text of the autograded notebook to ``megabytes``; whether any was cut."""
    limit, cut = int(megabytes * 1e6), False
    nb = json.loads(graded.read_text())
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            for key, value in [("text", out.get("text")), *out.get("data", {}).items()]:
                text = "".join(value) if isinstance(value, list) else value
                if isinstance(text, str) and len(text) > limit:
                    short = text[:limit] + "\n... salida recortada (límite de la corrección) ...\n"
                    (out if key == "text" else out["data"])[key] = short
                    cut = True
    if cut:
        graded.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n")
    return cut


def _scratch_course(course: Path, sub: Submission, source: dict, template: Path, copy: Path,
                    name: str) -> None:
    """The course as one submission's grading needs it: config, gradebook, source, submission."""
    (copy / "source" / sub.assignment).mkdir(parents=True)
    (copy / "source" / sub.assignment / name).write_text(json.dumps(source))
    for extra in ("nbgrader_config.py", "course_env.json"):
        if (course / extra).exists():
            shutil.copy(course / extra, copy / extra)
    _copy_db(template, copy / "gradebook.db")
    shutil.copytree(course / "submitted" / sub.student / sub.assignment,
                    copy / "submitted" / sub.student / sub.assignment)


def _notebook_name(course: Path, sub: Submission) -> str:
    return next((course / "source" / sub.assignment).glob("*.ipynb")).name


def _copy_db(src: Path, dest: Path) -> None:
    """A consistent copy of an SQLite database (its backup API, not a file copy)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)


def _thread_env(threads: int) -> dict[str, str]:
    """Threads per kernel: N kernels on N cores must not each start one thread per core."""
    n = str(max(1, threads))
    return {k: n for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")} | {
        "TF_NUM_INTEROP_THREADS": "1"}


def run_limited(command: list[str], cwd: Path, env: dict[str, str],
                limits: Limits) -> tuple[bool, str, str]:
    """Run ``command`` and its children (the kernel) under the memory limit and the total
    timeout; ``(ok, reason it was stopped or "", log)``."""
    import psutil

    log_path = cwd / f".{command[3]}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        reason, start = "", time.monotonic()
        while proc.poll() is None:
            time.sleep(0.25)
            tree = _tree(psutil, proc.pid)
            rss = sum(_rss(p) for p in tree)
            if rss > limits.memory_gib * 2**30:
                reason = f"superó el límite de memoria ({limits.memory_gib:g} GiB)"
            elif time.monotonic() - start > limits.total_timeout:
                reason = f"superó el tiempo total ({limits.total_timeout} s)"
            if reason:
                _kill(psutil, tree)
                proc.wait()
        _kill(psutil, _tree(psutil, proc.pid)[1:])  # a kernel left behind
    return proc.returncode == 0 and not reason, reason, log_path.read_text(errors="replace")


def _tree(psutil, pid: int) -> list:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _kill(psutil, processes: list) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _rss(process) -> int:
    try:
        return process.memory_info().rss
    except Exception:
        return 0


def _reason_from(log: str) -> str:
    """Why nbgrader could not grade, from its log: timeout, dead kernel or its last error."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return "el kernel murió (un fallo de Python, de memoria o un os._exit)"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error" in line] or lines[-1:]
    return f"nbgrader no pudo corregir la entrega: {errors[-1][:300]}" if errors else \
        "nbgrader no pudo corregir la entrega"


def _verify(db: Path, sub: Submission, name: str, verdicts: dict, submitted: dict,
            touched: list[str], pristine: set[str], fed: dict[str, list[str]]) -> list[dict]:
    """Keep, per check cell, the lower of nbgrader's score and the pristine replay's; zero an
    exercise whose code tried to leave the sandbox (``fed``) and every autograded point if
    protected files changed. Return the report's lines."""
    from nbgrader.api import Gradebook

    found = "; ".join(integrity.suspicious(submitted["cells"], pristine)) or \
        "nada sospechoso a la vista"
    report = _files_report(sub, touched)
    stem = Path(name).stem
    with Gradebook(f"sqlite:///{db}") as gb:
        notebook = gb.find_submission_notebook(stem, sub.assignment, sub.student)
        for grade in notebook.grades:
            if grade.name not in verdicts or grade.auto_score is None:
                continue
            verified = grade.max_score if verdicts[grade.name]["passed"] else 0.0
            if touched or grade.name in fed:
                verified = 0.0
            if grade.auto_score > verified or grade.name in fed:
                detected = "; ".join(f"entorno aislado: {w}" for w in fed.get(grade.name, []))
                report.append({"student": sub.student, "assignment": sub.assignment,
                               "exercise": grade.name, "nbgrader": grade.auto_score,
                               "verified": verified, "detected": detected or found,
                               "replay": _printed(verdicts[grade.name]["outputs"])})
                grade.auto_score = min(grade.auto_score, verified)
        gb.db.commit()
    return report


def _printed(outputs: list) -> str:
    """What a cell printed (its first lines), for the report."""
    text = "".join(o.get("text", "") if o.get("output_type") == "stream" else
                   f"{o.get('ename', '')}: {o.get('evalue', '')}\n" for o in outputs
                   if o.get("output_type") in ("stream", "error"))
    return " | ".join(line for line in text.splitlines()[:3] if line.strip())


def _files_report(sub: Submission, touched: list[str]) -> list[dict]:
    if not touched:
        return []
    shown = ", ".join(touched[:5]) + (f" y {len(touched) - 5} más" if len(touched) > 5 else "")
    return [{"student": sub.student, "assignment": sub.assignment, "exercise": "*",
             "nbgrader": "", "verified": 0.0, "replay": "",
             "detected": f"modificó o borró archivos que no son suyos: {shown}"}]


def _show_verified_outputs(graded: Path, verdicts: dict) -> None:
    """The check cells of the autograded notebook show the pristine replay's feedback."""
    nb = json.loads(graded.read_text())
    for cell in nb["cells"]:
        grade_id = integrity.nbgrader_meta(cell).get("grade_id")
        if integrity.is_check(cell) and grade_id in verdicts:
            cell["outputs"] = verdicts[grade_id]["outputs"]
    graded.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n")


def _files(copy: Path, sub: Submission) -> dict[str, bytes]:
    """The autograded notebook and the feedback, relative to the course."""
    out = {}
    for kind in ("autograded", "feedback"):
        folder = copy / kind / sub.student / sub.assignment
        for path in (p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []:
            out[str(path.relative_to(copy))] = path.read_bytes()
    return out


# --------------------------------------------------------------------------- merge


GRADE_FIELDS = ("auto_score", "manual_score", "extra_credit", "needs_manual_grade")
COMMENT_FIELDS = ("auto_comment", "manual_comment")


def read_rows(db: Path, sub: Submission) -> dict:
    """What autograde wrote for one submission: timestamp, notebooks, grades, comments."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:
        s = gb.find_submission(sub.assignment, sub.student)
        return {"timestamp": s.timestamp.isoformat() if s.timestamp else None,
                "notebooks": {nb.name: {
                    "flagged": nb.flagged, "late_submission_penalty": nb.late_submission_penalty,
                    "grades": {g.name: {f: getattr(g, f) for f in GRADE_FIELDS}
                               for g in nb.grades},
                    "comments": {c.name: {f: getattr(c, f) for f in COMMENT_FIELDS}
                                 for c in nb.comments}} for nb in s.notebooks}}


def merge(course: Path, sub: Submission, result: dict) -> None:
    """Write a task's rows into the course gradebook and its files into the course."""
    from datetime import datetime

    from nbgrader.api import Gradebook

    rows = result["rows"]
    for folder in ("autograded", "feedback"):
        shutil.rmtree(course / folder / sub.student / sub.assignment, ignore_errors=True)
    for rel, data in result["files"].items():
        path = course / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_student(sub.student)
        stamp = datetime.fromisoformat(rows["timestamp"]) if rows["timestamp"] else None
        with warnings.catch_warnings():  # nbgrader's own add_submission warns (SQLAlchemy)
            warnings.simplefilter("ignore")
            gb.update_or_create_submission(sub.assignment, sub.student, timestamp=stamp)
        for nb_name, nb in rows["notebooks"].items():
            notebook = gb.find_submission_notebook(nb_name, sub.assignment, sub.student)
            notebook.flagged = nb["flagged"]
            notebook.late_submission_penalty = nb["late_submission_penalty"]
            for g in notebook.grades:
                for field, value in nb["grades"].get(g.name, {}).items():
                    setattr(g, field, value)
            for c in notebook.comments:
                for field, value in nb["comments"].get(c.name, {}).items():
                    setattr(c, field, value)
        gb.db.commit()


def forget(course: Path, sub: Submission, result: dict) -> None:
    """A submission whose grading failed keeps no grade of an earlier version: the export then
    says why it has none."""
    from nbgrader.api import Gradebook, MissingEntry

    for folder in ("autograded", "feedback"):
        shutil.rmtree(course / folder / sub.student / sub.assignment, ignore_errors=True)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb, \
            contextlib.suppress(MissingEntry):
        gb.remove_submission(sub.assignment, sub.student)


# --------------------------------------------------------------------------- the run


def autograde(course: Path, workers: int | None = None, scheduler: str | None = None,
              limits: Limits | None = None, force: bool = False) -> list[dict]:
    """Grade every submission not graded yet (or changed) in ``course``; return the results."""
    from tqdm.auto import tqdm

    state_dir = course / STATE
    state_dir.mkdir(exist_ok=True)
    state = _load(state_dir / "state.json")
    subs = submissions(course)
    prints = {s.key: fingerprint(course, s) for s in subs}
    todo = [s for s in subs if force or state.get(s.key, {}).get("fingerprint") != prints[s.key]]
    print(f"{len(subs)} entregas; {len(subs) - len(todo)} ya corregidas y sin cambios; "
          f"{len(todo)} por corregir")
    if not todo:
        return []
    if (limits is None or limits.sandbox) and (why := sandbox.works()):  # before any work
        raise sandbox.SandboxMissing(why)
    _add_students(course, {s.student for s in todo})
    template = state_dir / "template.db"
    _copy_db(course / "gradebook.db", template)
    sources = {a: json.loads(next((course / "source" / a).glob("*.ipynb")).read_text())
               for a in {s.assignment for s in todo}}
    env = course_env(course)
    client, cluster = _client(workers, scheduler, len(todo))
    n = workers or len(client.scheduler_info()["workers"]) or 1
    limits = limits or default_limits(n)
    protected = [str(p) for p in protected_paths(course, env)]
    results = []
    try:
        from distributed import as_completed

        futures = [client.submit(grade, str(course), s, sources[s.assignment], str(template),
                                 limits, protected, env, key=f"grade-{s.key}", pure=False)
                   for s in todo]
        bar = tqdm(total=len(todo), desc="corrigiendo", unit="entrega")
        for future in as_completed(futures):
            result = future.result()
            sub = Submission(result["student"], result["assignment"])
            (merge if result["status"] == "graded" else forget)(course, sub, result)
            results.append(result)
            state[sub.key] = {"fingerprint": prints[sub.key]} | {
                k: result[k] for k in ("status", "reason", "seconds")}
            _save(state_dir / "state.json", state)
            bar.update()
            bar.set_postfix(fallidas=sum(r["status"] == "failed" for r in results))
        bar.close()
        if n > 1:
            results = _alone_again(client, results, course, sources, template, limits,
                                   protected, env, state, prints)
    finally:
        with kept_environment():
            client.close()
            if cluster is not None:
                cluster.close()
    write_reports(course, results, state)
    return results


def _add_students(course: Path, students: set[str]) -> None:
    """Students who submitted, in the gradebook (as nbgrader's autograde does): the export then
    lists them even if their grading fails."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in sorted(students):
            gb.update_or_create_student(student)


def _alone_again(client, results, course, sources, template, limits, protected, env, state,
                 prints) -> list[dict]:
    """Submissions graded while protected files changed, graded again one at a time: with
    tasks in parallel a change cannot be told apart from another submission's."""
    flagged = [r for r in results if r.get("touched")]
    if not flagged:
        return results
    print(f"{len(flagged)} entregas corregidas mientras cambiaban archivos protegidos: se "
          "corrigen de nuevo, una a una, para saber cuál los cambia")
    kept = [r for r in results if not r.get("touched")]
    limits = replace(limits, threads=os.cpu_count() or 1)  # alone: every core
    for old in flagged:
        sub = Submission(old["student"], old["assignment"])
        result = client.submit(grade, str(course), sub, sources[sub.assignment], str(template),
                               limits, protected, env, key=f"alone-{sub.key}", pure=False).result()
        (merge if result["status"] == "graded" else forget)(course, sub, result)
        state[sub.key] = {"fingerprint": prints[sub.key]} | {
            k: result[k] for k in ("status", "reason", "seconds")}
        _save(course / STATE / "state.json", state)
        kept.append(result)
    return kept


def protected_paths(course: Path, env: dict[str, str]) -> list[Path]:
    """What no submission may change: the course's sources, releases, submissions and config,
    the helpers package, the data and the trained models (new cache files are allowed)."""
    own = [course / n for n in ("source", "release", "submitted", "nbgrader_config.py",
                                "course_env.json")]
    shared = [Path(env[k]) for k in ("XAI_DATA_DIR", "XAI_CACHE_DIR") if env.get(k)]
    return [p for p in (*own, ROOT / "helpers", *shared) if p.exists()]


def _client(workers: int | None, scheduler: str | None, tasks: int):
    """A Dask client: the given scheduler, or a local cluster of one process per worker."""
    import cloudpickle
    from distributed import Client, LocalCluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(integrity)
    cloudpickle.register_pickle_by_value(sandbox)
    if scheduler:
        return Client(scheduler), None
    n = workers or max(1, min(os.cpu_count() or 1, tasks))
    with kept_environment():  # Dask's nannies set OMP_NUM_THREADS=1... in this process
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               memory_limit=0, dashboard_address=None)
    return Client(cluster), cluster


@contextlib.contextmanager
def kept_environment():
    """Restore ``os.environ`` afterwards: what a caller starts later (a kernel running torch
    with one thread) must not inherit Dask's worker settings."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def default_limits(workers: int, sandboxed: bool = True) -> Limits:
    """Per-cell timeout of the course; memory and threads shared among the workers."""
    import psutil

    cores = os.cpu_count() or 1
    memory = 0.8 * psutil.virtual_memory().total / 2**30 / max(1, min(workers, cores))
    return Limits(memory_gib=round(memory, 1), threads=max(1, cores // max(1, workers)),
                  sandbox=sandboxed)


def course_env(course: Path) -> dict[str, str]:
    """This process's environment plus the course's ``XAI_*`` defaults (course_env.json)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    defaults = _load(course / "course_env.json")
    return {**defaults, **env} | {"XAI_STRICT_CHECKS": "1"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    tmp.replace(path)


def write_reports(course: Path, results: list[dict], state: dict) -> None:
    """Integrity report, per-notebook timing table (printed and CSV)."""
    lines = [line for r in results for line in r.get("report", [])]
    fields = ["student", "assignment", "exercise", "nbgrader", "verified", "detected", "replay"]
    with (course / "integrity.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(lines)
    for line in lines:
        print(f"INTEGRIDAD {line['student']} {line['assignment']} {line['exercise']}: "
              f"{line['nbgrader']} -> {line['verified']} puntos; {line['detected']}"
              + (f"; comprobación aislada: {line['replay']}" if line["replay"] else ""))
    for r in (r for r in results if r["status"] == "failed"):
        print(f"FALLÓ {r['student']} {r['assignment']}: {r['reason']}")
    rows = []
    for assignment in sorted({r["assignment"] for r in results}):
        mine = [r for r in results if r["assignment"] == assignment]
        seconds = [r["seconds"] for r in mine]
        rows.append({"assignment": assignment, "submissions": len(mine),
                     "median_s": round(statistics.median(seconds), 1),
                     "max_s": max(seconds),
                     "failed": sum(r["status"] == "failed" for r in mine)})
    with (course / "grading_times.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["assignment", "submissions", "median_s", "max_s", "failed"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'cuaderno':<40} {'entregas':>8} {'mediana s':>10} {'máx. s':>8} {'fallidas':>8}")
    for row in rows:
        print(f"{row['assignment']:<40} {row['submissions']:>8} {row['median_s']:>10} "
              f"{row['max_s']:>8} {row['failed']:>8}")

