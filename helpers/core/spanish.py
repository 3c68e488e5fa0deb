"""Numbers as a Spanish reader expects them: decimal comma, "74,9 %", "12 345" (numpy only).

Lesson: every notebook prints through these helpers (first used in ``07_comparativa.ipynb``).
Groups of thousands are separated by a space from five integer digits on (RAE: "1234",
"12 345"); a space goes before "%"; interval ends are separated by ";" since "," is the decimal
mark: "0,12 [0,05; 0,20]".
"""

from __future__ import annotations

import math


def num(x: float, digits: int = 2, signed: bool = False) -> str:
    """``x`` with ``digits`` decimals and a decimal comma (``signed``: always show + or -)."""
    x = float(x)
    if not math.isfinite(x):
        return "n/d" if math.isnan(x) else ("-∞" if x < 0 else "∞")
    if round(x, digits) == 0:
        x = 0.0  # never "-0,00"
    text = format(x, f"{'+' if signed else ''},.{digits}f")
    sign, body = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    whole, _, frac = body.partition(".")
    digits_only = whole.replace(",", "")
    whole = whole.replace(",", " ") if len(digits_only) >= 5 else digits_only
    return sign + whole + ("," + frac if frac else "")


def pct(x: float, digits: int = 1, signed: bool = False) -> str:
    """A fraction as a percentage: ``pct(0.749)`` -> ``"74,9 %"``."""
    return f"{num(100 * float(x), digits, signed)} %"


def general(x: float, significant: int = 6) -> str:
    """``x`` with up to ``significant`` significant digits (Python's ``g``), decimal comma:
    ``general(0.368786)`` -> ``"0,368786"``, ``general(1e-05)`` -> ``"1e-05"``."""
    return format(float(x), f".{significant}g").replace(".", ",")


def _points(x: float, digits: int = 1, signed: bool = False) -> str:
    return num(100 * float(x), digits, signed)


def interval(estimate, digits: int = 2, percent: bool = False, signed: bool = False,
             points: bool = False) -> str:
    """``"value [low; high]"`` of an :class:`~helpers.core.intervals.Estimate`.

    ``percent``: fractions as "74,9 %"; ``points``: a difference of two fractions in percentage
    points, ``"+3,5 [1,2; 5,8] puntos"``.
    """
    f = _points if points else pct if percent else num
    text = (f"{f(estimate.value, digits, signed)} "
            f"[{f(estimate.low, digits)}; {f(estimate.high, digits)}]")
    return text + " puntos" if points else text
