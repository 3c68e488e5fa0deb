"""Exercise checks of data augmentation and perturbations.

Lessons: ``11_data_augmentation.ipynb``, ``12_mixup_y_cutmix.ipynb`` and
``13_entrenamiento_y_comparacion.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.checks import (
    Verdict,
    call,
    check_value,
    describe_type,
    diagnose,
    numeric_like,
    plain,
    report,
)


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
        value = plain(value)
        if not numeric_like(value) or np.size(value) != 1:
            return report(exercise, False, "", f"la función devuelve {describe_type(value)}; "
                          "se esperaba un número (el peso de la pareja).")
        got.append(float(np.reshape(value, ())))
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


def check_horizontal_flip(exercise: str, func: Callable) -> Verdict:
    """``func(batch)`` on a [N, H, W, C] batch must reverse the width axis (axis 2)."""
    x = np.arange(2 * 3 * 4 * 3, dtype=np.float32).reshape(2, 3, 4, 3)
    ok, got = call(exercise, func, x.copy())
    if not ok:
        return Verdict(False)
    got = np.asarray(got)
    mistakes = {"ese es un volteo VERTICAL: se invirtió el alto (eje 1), no el ancho (eje 2).":
                x[:, ::-1], "se invirtió el orden de las imágenes del lote (eje 0).": x[::-1],
                "se invirtieron los canales de color (eje 3).": x[..., ::-1]}
    return diagnose(exercise, got, x[:, :, ::-1], mistakes,
                    "el eje del ancho es el tercero (índice 2): inviértelo con ::-1.")


def check_mixup_pair(exercise: str, func: Callable) -> Verdict:
    """``func(a, b, ya, yb, lam)`` must give ``(lam a + (1-lam) b, lam ya + (1-lam) yb)``."""
    a, b = np.full((2, 2, 3), 100.0), np.full((2, 2, 3), 200.0)
    ya, yb = np.eye(3)[0], np.eye(3)[2]
    got, expected, swapped = [], [], []
    for lam in (0.25, 0.9):
        ok, value = call(exercise, func, a.copy(), b.copy(), ya.copy(), yb.copy(), lam)
        if not ok:
            return Verdict(False)
        try:
            image, label = value
        except (TypeError, ValueError):
            return report(exercise, False, "", "se esperaba una tupla (imagen, etiqueta).")
        got.append(np.concatenate([np.ravel(image), np.ravel(label)]))
        expected.append(np.concatenate([np.ravel(lam * a + (1 - lam) * b),
                                        lam * ya + (1 - lam) * yb]))
        swapped.append(np.concatenate([np.ravel((1 - lam) * a + lam * b),
                                       (1 - lam) * ya + lam * yb]))
    if len({g.shape for g in got}) > 1:
        return report(exercise, False, "", "la forma del resultado cambia con λ.")
    mistakes = {"λ y 1 - λ están intercambiados: λ pondera la imagen a y su etiqueta ya.":
                np.stack(swapped)}
    return diagnose(exercise, np.stack(got), np.stack(expected), mistakes,
                    "la imagen y la etiqueta se mezclan con el MISMO λ: λ·a + (1-λ)·b.")


def check_validation_not_augmented(exercise: str, answer, dataset, batch_size: int,
                                   augment) -> Verdict:
    """``answer``: max |first batch with ``augment`` - without| of the validation pipeline."""
    from helpers.keras.pipeline import make_pipeline

    first = [next(iter(make_pipeline(dataset, batch_size, training=False, **extra)))[0].numpy()
             for extra in ({"augment": augment}, {})]
    return check_value(exercise, answer, float(np.max(np.abs(first[0] - first[1]))),
                       "con training=False, make_pipeline ignora `augment`: los lotes deben ser "
                       "idénticos.", rtol=0.0, atol=1e-6)
