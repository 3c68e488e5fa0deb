"""Exercise checks of data augmentation and perturbations.

Lessons: ``11_data_augmentation.ipynb``, ``12_mixup_y_cutmix.ipynb`` and
``13_entrenamiento_y_comparacion.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.checks import (
    Verdict,
    as_number,
    call,
    diagnose,
    report,
    shown_or_type,
)
from helpers.checks.record import graded


@graded
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
        if as_number(value) is None:
            return report(exercise, False, "", f"la función devuelve {shown_or_type(value)}; "
                          "se esperaba un número (el peso de la pareja).")
        got.append(as_number(value))
        expected.append((y1 - y0) * (x1 - x0) / (h * w))
        unadjusted.append(1 - lam)
    mistakes = {"usas 1 - λ muestreado: tras recortar la caja al borde, el área pegada cambia, "
                "así que λ debe recalcularse.": np.array(unadjusted),
                "devuelves λ: ese es el peso de la imagen original, no el de la pareja.":
                np.array([c[0] for c in cases])}
    return diagnose(exercise, got, np.array(expected), mistakes,
                     "peso de la pareja = píxeles pegados / píxeles totales = "
                     "(y1 - y0)(x1 - x0) / (alto · ancho).")


@graded
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


@graded
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


@graded
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


@graded
def check_validation_pipeline(exercise: str, func: Callable) -> Verdict:
    """``func(ds, batch_size, block)`` must build a validation pipeline with
    :func:`helpers.keras.pipeline.make_pipeline` that gets ``block`` but neither augments nor
    shuffles; checked on unseen images with a block whose effect shows (it adds 1000)."""
    import tensorflow as tf

    from helpers.keras.pipeline import make_pipeline

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (13, 20, 24, 3), dtype=np.uint8)
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(13)))

    def block(x, training=False):
        return x + 1000.0 if training else x

    ok, got = call(exercise, func, ds, 5, block)
    if not ok:
        return Verdict(False)
    if not isinstance(got, tf.data.Dataset):
        return report(exercise, False, "", f"la función devuelve {shown_or_type(got)}; se "
                      "esperaba un tf.data.Dataset (el pipeline).")
    batches = [np.asarray(x) for x, _ in got]
    expected = [np.asarray(x) for x, _ in make_pipeline(ds, 5, training=False)]
    sizes = [len(b) for b in batches]
    hint = "make_pipeline con training=False ignora el aumento y no baraja."
    if sizes != [len(b) for b in expected]:
        return report(exercise, False, "", f"los lotes tienen {sizes} imágenes; se esperaban "
                      f"{[len(b) for b in expected]} (tamano_lote).", hint)
    got_all, want = np.concatenate(batches), np.concatenate(expected)
    if got_all.shape != want.shape:
        return report(exercise, False, "", f"las imágenes tienen forma {got_all.shape[1:]}; "
                      f"se esperaba {want.shape[1:]} (la de make_pipeline).", hint)
    if got_all.max() > 255:
        return report(exercise, False, "", "el pipeline AUMENTA: en validación las imágenes no "
                      "se transforman (training=False).", hint)
    if np.allclose(got_all, want):
        return report(exercise, True, "correcto: ni aumenta ni baraja (comprobado con otras "
                      "imágenes y otro bloque).", "")
    if np.allclose(np.sort(got_all.reshape(len(got_all), -1).sum(1)),
                   np.sort(want.reshape(len(want), -1).sum(1))):
        return report(exercise, False, "", "el pipeline baraja: en validación el orden es fijo.",
                      hint)
    return report(exercise, False, "", "las imágenes no coinciden con las de make_pipeline sin "
                  "aumento.", hint)
