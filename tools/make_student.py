"""Write student versions of the notebooks: solutions replaced by stubs, outputs cleared.

Usage: python tools/make_student.py [--out build/student] [notebooks ...]

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) becomes
``# TU CÓDIGO AQUÍ`` plus ``raise NotImplementedError``, at the block's indentation. Names the
solution assigns at top level are first set to None, so the check cell that follows prints
"todavía no hay respuesta" instead of a NameError.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n?",
                   re.MULTILINE | re.DOTALL)
STUB = "# TU CÓDIGO AQUÍ"


def assigned_names(code: str) -> list[str]:
    """Names bound by top-level assignments of ``code`` (empty if it is an indented body)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name) and sub.id not in names:
                    names.append(sub.id)
    return names


def stub_for(match: re.Match) -> str:
    indent, body = match.group(1), match.group(2)
    lines = [f"{indent}{STUB}"]
    if not indent:
        lines += [f"{name} = None" for name in assigned_names(body)]
    lines.append(f'{indent}raise NotImplementedError("Escribe aquí tu solución")')
    return "\n".join(lines) + "\n"


def studentize(nb: nbformat.NotebookNode) -> int:
    """Replace solutions in place, clear outputs; return the number of solution blocks."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source, n = BLOCK.subn(stub_for, cell.source if cell.source.endswith("\n")
                               else cell.source + "\n")
        if n:
            cell.source = source.rstrip("\n")
            count += n
        cell.outputs, cell.execution_count = [], None
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        count = studentize(nb)
        nbformat.validate(nb)
        nbformat.write(nb, args.out / path.name)
        print(f"{path.name}: {count} soluciones sustituidas")
    print(f"Versiones para estudiantes en {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
