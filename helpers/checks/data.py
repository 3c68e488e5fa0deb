"""Exercise checks of datasets and input pipelines: each derives its expected value itself.

Lessons: ``00_entorno_y_datos.ipynb`` and ``10_flowers102_datos_y_pipeline.ipynb``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.checks import (
    Verdict,
    as_integer,
    as_number,
    call,
    check_value,
    diagnose,
    numeric_like,
    plain,
    report,
)
from helpers.checks.record import graded


@graded
def check_landscape_count(exercise: str, answer: Any, dataset) -> Verdict:
    """``answer`` must be how many images of ``dataset`` (of (image [H, W, C], label)) are wider
    than tall; taller ones (axes swapped) and squares are named."""
    shapes = [tuple(image.shape[:2]) for image, _ in dataset]
    wide = sum(w > h for h, w in shapes)
    if as_integer(answer) is not None and as_integer(answer) != wide:
        value = as_integer(answer)
        if value == sum(h > w for h, w in shapes) and value != wide:
            return report(exercise, False, "", "esas son las verticales: shape es (alto, ancho, "
                          "canales).", "apaisada: ancho mayor que alto.")
        if value == sum(w >= h for h, w in shapes):
            return report(exercise, False, "", "cuentas también las cuadradas: apaisada es "
                          "estrictamente más ancha que alta.")
    return check_value(exercise, answer, wide, "recorre el split y compara el ancho con el alto "
                       "de cada imagen.")


@graded
def check_count_per_class(exercise: str, func) -> Verdict:
    """``func(labels, num_classes)`` must give the images of each class, an int array
    [num_classes]; checked on unseen labels where the last classes have no image."""
    labels = np.random.default_rng(31).integers(0, 5, 40)
    for case, num_classes in ((labels, 7), (labels % 3, 3)):
        ok, got = call(exercise, func, case.copy(), num_classes)
        if not ok:
            return Verdict(False)
        expected = np.bincount(case, minlength=num_classes)
        got = plain(got)
        if numeric_like(got) and np.shape(got) == (case.max() + 1,) != expected.shape:
            return report(exercise, False, "", "faltan las clases sin ninguna imagen (las "
                          "últimas): el resultado debe tener una entrada por clase, también "
                          "las que valen 0.", "np.bincount tiene un argumento para eso.")
        verdict = diagnose(exercise, got, expected, {
            "son fracciones, no números de imágenes.": expected / len(case)},
            "cuenta cuántas etiquetas valen 0, 1, ..., num_clases - 1.", quiet_success=True)
        if not verdict:
            return verdict
    return report(exercise, True, "correcto (comprobado con etiquetas nuevas, también con "
                  "clases sin imágenes).", "")


@graded
def check_batches_function(exercise: str, func) -> Verdict:
    """``func(n_images, batch_size)`` must give the batches of one epoch (the last one may be
    incomplete), as ``tf.data``'s ``batch`` makes them; checked on unseen sizes."""
    import tensorflow as tf

    cases = [(1020, 32), (1024, 32), (7, 10), (100, 1), (33, 32)]
    got = []
    for n, b in cases:
        ok, value = call(exercise, func, n, b)
        if not ok:
            return Verdict(False)
        got.append(as_number(value))
    if None in got:
        return report(exercise, False, "", "la función debe devolver un número por llamada.")
    expected = np.array([int(tf.data.Dataset.range(n).batch(b).cardinality())
                         for n, b in cases])
    return diagnose(exercise, np.ravel(got), expected, {
        "redondeas hacia abajo: el último lote, aunque esté incompleto, también es un lote.":
            np.array([n // b for n, b in cases]),
        "n // lote + 1 cuenta un lote de más cuando n es múltiplo del tamaño de lote.":
            np.array([n // b + 1 for n, b in cases]),
        "falta redondear: el número de lotes es un entero.": np.array([n / b for n, b in cases]),
    }, "un lote más si sobran imágenes; ninguno más si no sobran.")


@graded
def check_one_hot_function(exercise: str, func) -> Verdict:
    """``func(labels, num_classes)`` must give one-hot rows [N, num_classes] (any dtype), as
    ``tf.one_hot``; checked on unseen labels where the last class has no image."""
    import tensorflow as tf

    labels, num_classes = np.array([3, 0, 4, 4, 1, 2, 0]), 6
    ok, got = call(exercise, func, labels.copy(), num_classes)
    if not ok:
        return Verdict(False)
    expected = tf.one_hot(labels, num_classes).numpy()
    got = plain(got)
    hint = "una fila por imagen, una columna por clase: un 1 en la columna de su clase."
    if numeric_like(got) and np.shape(got) == expected.T.shape:
        return report(exercise, False, "", "la matriz está traspuesta: una FILA por imagen "
                      f"({expected.shape}).", hint)
    if numeric_like(got) and np.shape(got) == (len(labels), labels.max() + 1):
        return report(exercise, False, "", "faltan columnas: el ancho es n_clases, también si "
                      "alguna clase no aparece.", hint)
    return diagnose(exercise, got, expected, {
        "las columnas están desplazadas: la clase k va en la columna k (empezando en 0).":
            np.roll(expected, -1, axis=1)}, hint)
