"""Argument checks both tracks share: one rule and one message for each kind of bad input.

Lessons: ``02_mapas_de_saliencia.ipynb`` to ``07_comparativa.ipynb`` and
``14_grad_cam_e_integrated_gradients.ipynb`` (the explainers' arguments). Every check raises
ValueError naming the argument, the value and the fix.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (a bool, a float or a numpy float is rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def batch_size_or(default: int, value: Any) -> int:
    """``default`` when ``value`` is None, else ``value`` checked by :func:`positive_int`."""
    return default if value is None else positive_int("batch_size", value)


def int_pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= 1, as a pair."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return positive_int(f"{name}[0]", value[0]), positive_int(f"{name}[1]", value[1])
    if isinstance(value, tuple | list):
        raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
    size = positive_int(name, value)
    return size, size


def non_negative(name: str, value: Any) -> float:
    """A finite real number >= 0 (a noise level, a standard deviation)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def require_finite(name: str, n_bad: int, total: int) -> None:
    """ValueError when ``n_bad`` of the ``total`` values of ``name`` are NaN or infinite."""
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf) out of {total}: "
                         "explaining such an input means nothing. Find where they come from "
                         "(loading, normalization) or replace them, e.g. with nan_to_num.")
