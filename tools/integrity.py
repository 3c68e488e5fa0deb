"""What a grade may not depend on: the pristine replay of the checks, suspicious student code,
files changed during a submission's grading. Used by ``tools/autograde.py``.

The student's kernel (nbgrader's autograde) records each check's answers
(:mod:`helpers.checks.record`); :func:`replay` runs the instructor's notebook, solutions removed,
in a new kernel that reads only those answers, and its verdict per check cell is the grade.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
from pathlib import Path

import nbformat

from helpers.checks.record import RECORD_ENV, REPLAY_ENV

SMALL_FILE = 1 << 20  # files up to this size are hashed; larger ones compared by size and mtime


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_check(cell: dict) -> bool:
    """An autograded test cell: graded, not a solution, code."""
    meta = nbgrader_meta(cell)
    return cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution")


def defined_names(code: str) -> list[str]:
    """Top-level names a cell binds (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return list(dict.fromkeys(names))


def pristine_program(source: dict) -> nbformat.NotebookNode:
    """The instructor's notebook up to its last check cell, every solution code cell replaced by
    ``name = None`` for the names it defines: the checks get the student's answers from the
    recording instead."""
    nb = nbformat.reads(json.dumps(source), as_version=4)
    last = max((i for i, c in enumerate(nb.cells) if is_check(c)), default=-1)
    nb.cells = nb.cells[:last + 1]
    for cell in nb.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            names = defined_names(cell.source)
            cell.source = "\n".join(f"{n} = None" for n in names) or "pass"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def replay(source: dict, answers: Path, workdir: Path, env: dict[str, str],
           cell_timeout: int) -> dict[str, dict]:
    """Run :func:`pristine_program` in a new kernel that replays ``answers``; per check cell
    (by grade id): ``{"passed": bool, "outputs": [...]}``."""
    from nbclient import NotebookClient

    nb = pristine_program(source)
    env = {k: v for k, v in env.items() if k != RECORD_ENV} | {REPLAY_ENV: str(answers)}
    workdir.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(nb, timeout=cell_timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute(env=env, stderr=subprocess.DEVNULL)  # the kernel's own warnings
    return {nbgrader_meta(c)["grade_id"]: {
        "passed": not any(o.get("output_type") == "error" for o in c.outputs),
        "outputs": c.outputs} for c in nb.cells if is_check(c)}


RISKY_TARGETS = ("helpers", "sys.modules", "builtins", "__builtins__", "sys.stdout",
                 "sys.stderr", "os.environ", "sys.excepthook")
RISKY_NAMES = {"print", "report", "call", "ExerciseError", "Verdict", "__import__", "open"}
RISKY_ATTRIBUTES = {  # IPython hooks that rewrite or silence the cells that follow
    "input_transformers_post": "reescribe las celdas siguientes",
    "input_transformers_cleanup": "reescribe las celdas siguientes",
    "ast_transformers": "reescribe las celdas siguientes", "events": "engancha eventos de IPython",
    "showtraceback": "oculta los errores", "excepthook": "oculta los errores",
}
RISKY_CALLS = {
    "setattr": "cambia un atributo con setattr", "delattr": "borra un atributo con delattr",
    "set_custom_exc": "silencia las excepciones (set_custom_exc)",
    "redirect_stdout": "redirige la salida", "redirect_stderr": "redirige la salida de errores",
    "reload": "recarga un módulo", "putenv": "cambia variables de entorno",
    "unlink": "borra archivos", "rmtree": "borra carpetas", "rmdir": "borra carpetas",
    "write_text": "escribe archivos", "write_bytes": "escribe archivos",
    "_exit": "termina el proceso", "Popen": "ejecuta órdenes",
    "run_line_magic": "ejecuta magias de IPython",
}
MODULE_CALLS = {  # names too common to flag unless called on these modules (str.replace...)
    "os.remove": "borra archivos", "os.rename": "mueve archivos", "os.replace": "mueve archivos",
    "os.kill": "termina procesos", "os.system": "ejecuta órdenes", "shutil.move": "mueve archivos",
    "subprocess.run": "ejecuta órdenes", "subprocess.call": "ejecuta órdenes",
}


def suspicious(cells: list[dict], pristine: set[str] = frozenset()) -> list[str]:
    """Lines of student code that reach what a grade must not depend on, described in Spanish:
    ``"celda ej1_solucion, línea 3: reasigna helpers.checks.explain.check_x"``. Cells whose
    source is in ``pristine`` (the instructor's own cells) are not the student's."""
    found, aliases = [], {}
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code" or is_check(cell) or cell_text(cell) in pristine:
            continue
        where = nbgrader_meta(cell).get("grade_id") or f"{index + 1}"
        try:
            tree = ast.parse(cell_text(cell))
        except SyntaxError:
            continue
        risks = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                base = f"{node.module}." if isinstance(node, ast.ImportFrom) else ""
                aliases |= {a.asname or a.name: base + a.name for a in node.names}
            what = _risk(node, aliases)
            if what:
                risks.append((node.lineno, what))
        found += [f"celda {where}, línea {line}: {what}" for line, what in sorted(risks)]
    return list(dict.fromkeys(found))


def cell_text(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _risk(node: ast.AST, aliases: dict[str, str]) -> str:
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        for target in targets:
            text, last = ast.unparse(target), _last_name(target)
            root = text.split(".")[0].split("[")[0]
            full = aliases.get(root, root) + text[len(root):]
            if last in RISKY_NAMES or last.startswith("check_") or (
                    not isinstance(target, ast.Name) and full.startswith(RISKY_TARGETS)):
                return f"{'redefine' if isinstance(target, ast.Name) else 'reasigna'} {full}"
    if isinstance(node, ast.Attribute) and node.attr in RISKY_ATTRIBUTES:
        return f"{RISKY_ATTRIBUTES[node.attr]} ({ast.unparse(node)})"
    if isinstance(node, ast.Call):
        name, text = _last_name(node.func), ast.unparse(node.func)
        root = text.split(".")[0]
        full = aliases.get(root, root) + text[len(root):]
        if full in MODULE_CALLS:
            return f"{MODULE_CALLS[full]} ({text})"
        if name in RISKY_CALLS:
            return f"{RISKY_CALLS[name]} ({ast.unparse(node.func)})"
        if name == "open" and any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                  and set(a.value) & set("wax+") for a in node.args[1:2]):
            return "escribe archivos (open)"
    return ""


def _last_name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def snapshot(roots: list[Path]) -> dict[str, tuple]:
    """Every file under ``roots`` (folders or files): hash of small files, size and mtime of
    large ones."""
    files = {}
    for root in roots:
        paths = [root] if root.is_file() else (
            Path(folder) / name for folder, _, names in os.walk(root) for name in names)
        for path in paths:
            try:
                stat = path.stat()
                files[str(path)] = (stat.st_size, _digest(path)) if stat.st_size <= SMALL_FILE \
                    else (stat.st_size, stat.st_mtime_ns)
            except OSError:
                continue
    return files


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Files modified or deleted between two snapshots (new files are a cache filling up)."""
    return sorted(path for path, key in before.items() if after.get(path) != key)
