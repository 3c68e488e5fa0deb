"""Grading a class: nbgrader's serial autograde against the Dask path with 1, 2, ... workers.

N synthetic students cycle through five kinds (with the solutions, blank, wrong answers,
forging the checks, crashing the kernel) on the chosen notebooks. Each configuration grades a
fresh copy of the same course; after one warm-up grading (imports, disk caches) each timing is
the median of ``--repeats`` runs. Reported: seconds, submissions per minute and the speed-up
over serial nbgrader. Two bounds to read it with: the speed-up over one worker cannot exceed
the number of cores, and the Dask path runs every notebook twice (the student's kernel and the
pristine replay that makes grades unforgeable), so against serial nbgrader it gets about half
of that. The sandbox's cost: the same path with one worker and ``--unsafe-no-sandbox``, per
submission, and the start of a sandboxed kernel against an ordinary one running one cell
(``--kernels-only`` measures just that). Not a test: ``python bench/bench_autograde.py [-h]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import autograde as engine  # noqa: E402
import grading  # noqa: E402
import integrity  # noqa: E402
import sandbox  # noqa: E402

KINDS = ["soluciones", "en_blanco", "erroneas", "falsifica", "se_cae"]  # falsifica: wrong + forged
FORGE = ("import helpers.checks as C, importlib\n"
         "for _m in ('augment', 'data', 'explain', 'training'):\n"
         "    _mod = importlib.import_module('helpers.checks.' + _m)\n"
         "    for _n in dir(_mod):\n"
         "        if _n.startswith('check_'):\n"
         "            setattr(_mod, _n, lambda *a, **k: None)\n")
CRASH = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"


def student_version(kind: str, solved: dict, blank: dict) -> dict:
    """The notebook a student of ``kind`` submits."""
    if kind == "soluciones":
        return solved
    nb = json.loads(json.dumps(blank))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"
             and integrity.nbgrader_meta(c).get("solution")]
    if kind in ("erroneas", "falsifica"):  # every function answers 0, every value is 0
        for cell, good in zip(cells, (c for c in solved["cells"] if c["cell_type"] == "code"
                                      and integrity.nbgrader_meta(c).get("solution")),
                              strict=True):
            names = integrity.defined_names("".join(good["source"]))
            cell["source"] = "".join(f"def {n}(*a, **k):\n    return 0\n" for n in names)
    if kind == "falsifica":  # ... and the checks do nothing
        cells[0]["source"] = FORGE + cells[0]["source"]
    elif kind == "se_cae":
        cells[0]["source"] = CRASH
    return nb


def build(notebooks: list[Path], students: int, folder: Path) -> Path:
    course = folder / "curso"
    grading.release(notebooks, course, None)
    for path in notebooks:
        solved = json.loads(path.read_text())
        blank = json.loads((course / "release" / path.stem / path.name).read_text())
        for i in range(students):
            kind = KINDS[i % len(KINDS)]
            version = folder / "versiones" / kind / path.name
            version.parent.mkdir(parents=True, exist_ok=True)
            version.write_text(json.dumps(student_version(kind, solved, blank)))
            grading.submit(course, f"{kind}_{i:03d}", path.stem, version)
    return course


def timed(course: Path, folder: Path, run) -> float:
    """Seconds of ``run(copy)`` on a fresh copy of ``course``."""
    copy = folder / "copia"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(course, copy)
    start = time.perf_counter()
    run(copy)
    return time.perf_counter() - start


def kernel_seconds(folder: Path, sandboxed: bool, repeats: int) -> float:
    """Median seconds to start a kernel, run one cell (numpy imported) and shut it down."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    times = []
    for i in range(repeats + 1):  # the first is the warm-up
        work = folder / f"kernel-{sandboxed}-{i}"
        (work / "cwd").mkdir(parents=True)
        config, name = Config(), "python3"
        if sandboxed:
            spec = sandbox.spec_for([ROOT / "helpers"], [], work / "audit.log", 600, 1024, 64, 64)
            env, options = sandbox.install_kernel(work / "jail", spec)
            os.environ.update(env)
            for option in options:  # "--KernelManager.ip=...": what nbgrader gets
                key, value = option[2:].split("=", 1)
                setattr(config[key.split(".")[0]], key.split(".")[1], value)
            name = sandbox.KERNEL
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import numpy")])
        start = time.perf_counter()
        NotebookClient(nb, kernel_name=name, config=config,
                       resources={"metadata": {"path": str(work / "cwd")}}).execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=["04", "12"])
    parser.add_argument("--students", type=int, default=10, help="per notebook")
    parser.add_argument("--workers", default="1,2,all", help="comma-separated; all = cores")
    parser.add_argument("--repeats", type=int, default=1, help="runs per timing (median)")
    parser.add_argument("--kernels-only", action="store_true",
                        help="only the start of a sandboxed kernel against an ordinary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as tmp:
        plain, boxed = (kernel_seconds(Path(tmp), b, max(5, args.repeats)) for b in (False, True))
    print(f"Kernel con una celda: normal {plain:.2f} s, en el entorno aislado {boxed:.2f} s "
          f"(+{boxed - plain:.2f} s por entrega; mediana de {max(5, args.repeats)} tras un "
          "calentamiento)")
    if args.kernels_only:
        return
    cores = os.cpu_count() or 1
    workers = sorted({cores if w == "all" else int(w) for w in args.workers.split(",")})
    notebooks = grading.select(args.notebooks)
    n = args.students * len(notebooks)
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as tmp:
        folder = Path(tmp)
        course = build(notebooks, args.students, folder)
        print(f"{n} entregas ({args.students} por cuaderno: {', '.join(KINDS)}), "
              f"{len(notebooks)} cuadernos, {cores} núcleos")
        runs = {"nbgrader en serie": lambda c: grading.nbgrader(c, "autograde", "*", "--force",
                                                                capture=True, check=False)}
        for w in workers:
            runs[f"Dask, {w} worker{'s' if w > 1 else ''}"] = (
                lambda c, w=w: engine.autograde(c, workers=w, force=True))
        unsafe = engine.default_limits(1, sandboxed=False)
        runs["Dask, 1 worker, sin aislar"] = lambda c: engine.autograde(c, workers=1, force=True,
                                                                        limits=unsafe)
        warm = folder / "calentamiento"
        shutil.copytree(course, warm)
        for student in sorted((warm / "submitted").iterdir())[1:]:
            shutil.rmtree(student)
        engine.autograde(warm, workers=1, force=True)
        seconds = {name: statistics.median(timed(course, folder, run)
                                           for _ in range(args.repeats))
                   for name, run in runs.items()}
    serial = seconds["nbgrader en serie"]
    one = seconds.get("Dask, 1 worker")
    print(f"\n{'camino':<22} {'segundos':>9} {'entregas/min':>13} {'vs. serie':>10} "
          f"{'vs. 1 worker':>13}")
    for name, s in seconds.items():
        print(f"{name:<22} {s:>9.1f} {60 * n / s:>13.1f} {serial / s:>9.2f}x "
              f"{(one / s if one else float('nan')):>12.2f}x")
    if "Dask, 1 worker" in seconds:
        cost = (seconds["Dask, 1 worker"] - seconds["Dask, 1 worker, sin aislar"]) / n
        print(f"\nCoste del entorno aislado: {cost:+.1f} s por entrega (1 worker)")
    print(f"\nCota: con {cores} núcleos, la aceleración sobre 1 worker no pasa de {cores}x; el "
          "camino de Dask ejecuta cada cuaderno dos veces (kernel del estudiante + repetición "
          f"sin su código), así que frente a nbgrader en serie la cota es {cores / 2:g}x. "
          f"Mediana de {args.repeats} ejecución(es) tras un calentamiento.")


if __name__ == "__main__":
    main()
