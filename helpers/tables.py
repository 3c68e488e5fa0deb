"""Result tables as Markdown, so a notebook shows them with ``display(Markdown(...))``.

Lessons: ``07_comparativa.ipynb``, ``13_entrenamiento_y_comparacion.ipynb`` to
``15_analisis_de_errores_y_reflexion.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def markdown_table(rows: Sequence[dict], columns: dict[str, str],
                   formats: dict[str, str | Callable[[Any], str]] | None = None) -> str:
    """A Markdown table: one line per row, ``columns`` maps row keys to headers.

    ``formats`` maps a key to a format spec (``".1%"``) or a function; other values use
    ``str``. Numbers are right-aligned.
    """
    formats = formats or {}

    def cell(key: str, value: Any) -> str:
        fmt = formats.get(key)
        if callable(fmt):
            return fmt(value)
        if fmt is not None and value is not None:
            return format(value, fmt)
        return "" if value is None else str(value)

    numeric = {k: all(isinstance(r.get(k), int | float) for r in rows) for k in columns}
    lines = ["| " + " | ".join(columns.values()) + " |",
             "|" + "|".join("---:" if numeric[k] else ":---" for k in columns) + "|"]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k in columns) + " |" for r in rows]
    return "\n".join(lines)
