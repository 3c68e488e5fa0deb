"""Checks for the notebooks' exercises: clear feedback in Spanish, not a bare assertion trace.

Each check prints what is right or wrong and a hint. With ``$XAI_STRICT_CHECKS=1`` (set by
``make test``) a failed check also raises :class:`ExerciseError`, so CI notices a broken solution.
This module holds the generic checks; the specific ones are grouped by theme:
:mod:`~helpers.checks.explain` (02-07, 14), :mod:`~helpers.checks.augment` (11-13) and
:mod:`~helpers.checks.training` (01, 07, 13, 15). Lesson: ``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.core.spanish import general

STRICT_ENV = "XAI_STRICT_CHECKS"
NO_RETURN = "la función devuelve None: ¿falta un `return`?"


class ExerciseError(AssertionError):
    """A check failed while ``$XAI_STRICT_CHECKS`` is set."""


class Verdict:
    """Truthy when the check passed; shows nothing as a cell's last value (the print suffices)."""

    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Verdict({self.ok})"

    def _ipython_display_(self) -> None:
        pass


def report(exercise: str, ok: bool, success: str, problem: str, hint: str = "") -> Verdict:
    """Print the verdict of one exercise; return whether it passed."""
    if ok:
        print(f"✅ {exercise}: {success}")
        return Verdict(True)
    print(f"❌ {exercise}: {problem}" + (f"\n   Pista: {hint}" if hint else ""))
    if os.environ.get(STRICT_ENV) == "1":
        raise ExerciseError(f"{exercise}: {problem}")
    return Verdict(False)


def plain(value: Any) -> Any:
    """An answer in plain terms, whatever form the student used: torch and TensorFlow tensors
    (any device, requiring grad or not, any float precision) become numpy arrays, 0-d arrays and
    numpy scalars Python numbers, lists, tuples and ``torch.Size`` tuples of plain items."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray | np.generic):  # TF
        value = value.numpy()
    if (isinstance(value, np.ndarray) and value.ndim == 0) or isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    return value


def as_integer(value: Any) -> int | None:
    """``value`` as an int when it is one in any form (7, 7.0, ``np.int64(7)``, a 0-d tensor);
    None for text, bools, non-integral numbers and arrays."""
    value = plain(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is one number in any form (7, 0.5, ``np.float32``, a 0-d or
    one-element tensor or array); None for text, bools and arrays of several numbers."""
    value = plain(value)
    if _is_bool(value) or not numeric_like(value) or np.size(value) != 1:
        return None
    return float(np.reshape(value, ()))


def describe_type(value: Any) -> str:
    """What kind of thing ``value`` is, in Spanish, for feedback on a wrong type."""
    names = {dict: "un diccionario", str: "un texto (str)", set: "un conjunto (set)",
             bool: "un booleano", type(None): "None"}
    return names.get(type(value), f"un objeto de tipo {type(value).__name__}")


def shown_or_type(value: Any) -> str:
    """A number or tuple as written, anything else by its kind (:func:`describe_type`)."""
    value = plain(value)
    if isinstance(value, bool) or not (numeric_like(value) or isinstance(value, tuple)):
        return describe_type(value)
    return repr(value)


def check_value(exercise: str, answer: Any, expected: Any, hint: str = "",
                rtol: float = 1e-5, atol: float = 1e-8) -> Verdict:
    """Compare a number, array or exact value with the expected one.

    Any form of the answer is accepted (:func:`plain`: tensors, numpy scalars, lists for
    tuples, 7.0 for 7). Numbers match within ``rtol``/``atol`` (as :func:`numpy.allclose`; the
    feedback states the tolerance); a bool never matches a number (``True`` is not ``1`` here);
    text, dicts and other types where a number is expected get a sentence, never a traceback.
    """
    if answer is None or answer is Ellipsis:
        return report(exercise, False, "", "todavía no hay respuesta.", hint)
    answer, expected = plain(answer), plain(expected)
    if numeric_like(expected) and not _is_bool(expected) and not numeric_like(answer):
        return report(exercise, False, "", f"tu respuesta es {describe_type(answer)}; se "
                      "esperaba un número (o un array de números).", hint)
    if _is_bool(answer) and numeric_like(expected) and not _is_bool(expected):
        return report(exercise, False, "", f"tu respuesta es un booleano ({answer!r}); se "
                      "esperaba un número.", hint)
    if numeric_like(answer) and numeric_like(expected):
        a, e = np.asarray(answer), np.asarray(expected)
        if a.shape != e.shape:
            return report(exercise, False, "", f"la forma es {a.shape}, se esperaba {e.shape}.",
                          hint)
        shown = _show(answer)
        if a.dtype.kind in "biu" and e.dtype.kind in "biu":
            ok = bool(np.array_equal(a, e))  # integers: exactly
        else:
            ok = bool(np.allclose(a, e, rtol=rtol, atol=atol))
            shown += (f"; se admite un error relativo de {general(rtol)} o absoluto de "
                      f"{general(atol)}")
    else:
        try:
            ok = bool(answer == expected)
        except ValueError:  # element-wise comparison of arrays
            ok = bool(np.array_equal(np.asarray(answer), np.asarray(expected)))
        shown = _show(answer)
    return report(exercise, ok, f"correcto ({shown}).", f"tu respuesta es {shown}, que no es la "
                  "esperada.", hint)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_) or (
        isinstance(value, np.ndarray) and value.dtype == bool)


def _show(value: Any) -> str:
    """A short text for an answer: numbers and tuples as written, large arrays by shape."""
    if not numeric_like(value):
        return repr(value)
    arr = np.asarray(value)
    if arr.size > 8:
        return f"array de forma {arr.shape}"
    if arr.ndim == 0:
        return general(arr.item()) if arr.dtype.kind == "f" else str(arr.item())
    if isinstance(value, tuple):
        items = [v.item() if hasattr(v, "item") else v for v in value]
        if not any(isinstance(v, float) for v in items):
            return repr(tuple(items))
        return "(" + "; ".join(general(v) if isinstance(v, float) else repr(v) for v in items) + ")"
    return np.array2string(arr, precision=4).replace(".", ",")


def numeric_like(value: Any) -> bool:
    """Whether ``value`` is a number or an array of numbers."""
    try:
        return np.asarray(plain(value)).dtype.kind in "biuf"
    except (TypeError, ValueError, RuntimeError):
        return False


def diagnose(exercise: str, got: Any, expected: np.ndarray, mistakes: dict[str, np.ndarray],
             hint: str, quiet_success: bool = False) -> Verdict:
    """Pass if ``got`` matches ``expected``; else name the typical mistake it matches, if any.

    ``got`` may take any form (:func:`plain`); a non-numeric one gets a sentence.
    ``quiet_success``: print nothing on success (the caller checks more cases).
    """
    got = plain(got)
    if not numeric_like(got) or _is_bool(got):
        return report(exercise, False, "", f"el resultado es {describe_type(got)}; se esperaba "
                      f"un array de números de forma {np.shape(expected)}.", hint)
    got = np.asarray(got, dtype=float)
    if got.shape != expected.shape:
        return report(exercise, False, "", f"la forma es {got.shape}, se esperaba "
                      f"{expected.shape}.", hint)
    if np.allclose(got, expected, rtol=1e-4, atol=1e-6):
        if quiet_success:  # one of several cases: the caller reports at the end
            return Verdict(True)
        exact = np.asarray(expected).dtype.kind in "biu"
        return report(exercise, True, "correcto." if exact else
                      "correcto (se admite un error relativo de 1e-04).", "")
    for mistake, wrong in mistakes.items():
        if np.allclose(got, wrong, rtol=1e-4, atol=1e-6):
            return report(exercise, False, "", mistake, hint)
    return report(exercise, False, "", "el resultado no coincide con la fórmula.", hint)


def call(exercise: str, func: Callable, *args: Any) -> tuple[bool, Any]:
    """``(True, func(*args))``, or ``(False, None)`` after reporting why the call failed."""
    try:
        result = func(*args)
        if result is None:
            report(exercise, False, "", NO_RETURN)
            return False, None
        return True, result
    except NotImplementedError:
        report(exercise, False, "", "la función aún no está implementada.")
    except Exception as err:  # the student sees the error, briefly
        report(exercise, False, "", f"la función falla: {type(err).__name__}: {err}")
    return False, None
