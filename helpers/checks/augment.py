"""Exercise checks of data augmentation and perturbations.

Lessons: ``12_mixup_y_cutmix.ipynb`` and ``13_entrenamiento_y_comparacion.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.checks import Verdict, call, diagnose


def check_cutmix_weight(exercise: str, func: Callable) -> Verdict:
    """``func(lam, y0, y1, x0, x1, h, w)`` must give the partner's label weight after clipping.

    The box [y0, y1) x [x0, x1) is already clipped to the h x w image; ``lam`` is the value
    drawn before clipping. The right answer is the pasted pixel fraction, not ``1 - lam``.
    """
    cases = [(0.5, 0, 12, 20, 32, 32, 32), (0.3, 5, 25, 0, 9, 32, 40),
             (0.9, 10, 14, 10, 14, 20, 20)]
    got, expected, unadjusted = [], [], []
    for case in cases:
        ok, value = call(exercise, func, *case)
        if not ok:
            return Verdict(False)
        lam, y0, y1, x0, x1, h, w = case
        got.append(float(value))
        expected.append((y1 - y0) * (x1 - x0) / (h * w))
        unadjusted.append(1 - lam)
    mistakes = {"usas 1 - λ muestreado: tras recortar la caja al borde, el área pegada cambia, "
                "así que λ debe recalcularse.": np.array(unadjusted),
                "devuelves λ: ese es el peso de la imagen original, no el de la pareja.":
                np.array([c[0] for c in cases])}
    return diagnose(exercise, got, np.array(expected), mistakes,
                     "peso de la pareja = píxeles pegados / píxeles totales = "
                     "(y1 - y0)(x1 - x0) / (alto · ancho).")


def check_brightness(exercise: str, func: Callable) -> Verdict:
    """``func(images, delta)`` on raw [0, 255] pixels must give ``clip(x + 255 delta, 0, 255)``."""
    x = np.linspace(0, 255, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    delta = 0.3
    ok, got = call(exercise, func, x.copy(), delta)
    if not ok:
        return Verdict(False)
    got = np.asarray(got)
    mistakes = {
        "faltan los límites: hay píxeles por encima de 255 (recorta con np.clip).":
            x + 255 * delta,
        "delta es una fracción del rango: hay que sumar delta * 255, no delta.":
            np.clip(x + delta, 0, 255),
        "el brillo aquí es un desplazamiento aditivo, no un factor multiplicativo.":
            np.clip(x * (1 + delta), 0, 255),
        "los píxeles están en [0, 255], no en [0, 1]: no recortes a 1.":
            np.clip(x + 255 * delta, 0, 1),
    }
    return diagnose(exercise, got, np.clip(x + 255 * delta, 0, 255), mistakes,
                     "brillo(x, delta) = clip(x + 255·delta, 0, 255).")
