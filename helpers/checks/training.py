"""Exercise checks of training, model choice and error analysis.

Lessons: ``01_cifar10_modelo.ipynb``, ``07_comparativa.ipynb``,
``13_entrenamiento_y_comparacion.ipynb`` and ``15_analisis_de_errores_y_reflexion.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.checks import (
    Verdict,
    as_integer,
    as_number,
    call,
    diagnose,
    plain,
    report,
    shown_or_type,
)
from helpers.checks.record import graded


@graded
def check_best_epoch(exercise: str, func: Callable) -> Verdict:
    """``func(history)`` must give the 1-based epoch of the first highest ``val_accuracy``."""
    history = {"val_accuracy": [0.2, 0.5, 0.7, 0.6, 0.7, 0.65],
               "val_loss": [3.0, 2.0, 1.5, 1.6, 1.4, 1.45]}
    ok, got = call(exercise, func, history)
    if not ok:
        return Verdict(False)
    value = as_integer(got)
    if value is None:
        return report(exercise, False, "", "se esperaba un número entero de época, no "
                      f"{shown_or_type(got)}.")
    mistakes = {2: "es el índice empezando en 0: las épocas se cuentan desde 1.",
                5: "es la última época con el máximo (o la de menor val_loss): con empate "
                   "EarlyStopping se queda con la primera, y aquí se vigila val_accuracy.",
                6: "es la última época entrenada, no la mejor."}
    hint = "la primera posición del máximo de val_accuracy, con las épocas contadas desde 1."
    if value in mistakes:
        return report(exercise, False, "", f"{value} {mistakes[value]}", hint)
    return report(exercise, value == 3, "correcto (época 3 en el historial de prueba).",
                  f"{value} no es la época con mayor val_accuracy.", hint)


@graded
def check_choice_function(exercise: str, func: Callable) -> Verdict:
    """``func(val_accuracy, test_accuracy)`` (dicts variant -> mean accuracy) must return the
    variant with the highest validation accuracy (any of them on a tie). Checked on unseen
    results where the test split, or validation and test averaged, would choose another one."""
    cases = [({"a": 0.70, "b": 0.74, "c": 0.72}, {"a": 0.71, "b": 0.69, "c": 0.75}),
             ({"p": 0.60, "q": 0.62, "r": 0.61}, {"p": 0.80, "q": 0.60, "r": 0.70}),
             ({"x": 0.80, "y": 0.80, "z": 0.60}, {"x": 0.70, "y": 0.90, "z": 0.95})]
    hint = "la prueba no puede intervenir en ninguna elección; compara solo en validación."
    for val, test in cases:
        ok, got = call(exercise, func, dict(val), dict(test))
        if not ok:
            return Verdict(False)
        got = plain(got)
        if not isinstance(got, str) or got not in val:
            return report(exercise, False, "", f"la función devuelve {shown_or_type(got)}; se "
                          f"esperaba el nombre de una variante, como {next(iter(val))!r}.")
        if _is_top(val, got):
            continue
        mean = {k: (val[k] + test[k]) / 2 for k in val}
        if _is_top(test, got) or _is_top(mean, got):
            return report(exercise, False, "", "la elección usa el conjunto de PRUEBA: así deja "
                          "de ser una estimación honesta del modelo elegido.", hint)
        if _is_top({k: -v for k, v in val.items()}, got):
            return report(exercise, False, "", "eliges la PEOR variante en validación.", hint)
        return report(exercise, False, "", "no es la variante con mayor exactitud en "
                      "validación.", hint)
    return report(exercise, True, "correcto: elige por validación (comprobado con resultados "
                  "nuevos, empates incluidos).", "")

def _is_top(values: dict[str, float], key: str) -> bool:
    """Whether ``values[key]`` is the maximum (within float rounding; NaN never is)."""
    finite = [v for v in values.values() if np.isfinite(v)]
    return bool(finite) and bool(np.isclose(values[key], max(finite), rtol=0, atol=1e-12))


@graded
def check_per_class_accuracy(exercise: str, func: Callable) -> Verdict:
    """``func(cm)`` with ``cm[true, predicted]`` must give each class's recall (row-wise)."""
    cm = np.array([[5, 1, 0], [2, 2, 4], [0, 3, 9]])
    ok, got = call(exercise, func, cm.copy())
    if not ok:
        return Verdict(False)
    diag = np.diag(cm).astype(float)
    mistakes = {
        "se dividió por la suma de cada COLUMNA (eso es la precisión de la clase predicha); "
        "las filas son la clase real.": diag / cm.sum(0),
        "se dividió por el total de imágenes, no por las de cada clase.": diag / cm.sum(),
    }
    return diagnose(exercise, np.asarray(got), diag / cm.sum(1), mistakes,
                     "exactitud de la clase k = cm[k, k] / cm[k, :].sum().")


@graded
def check_most_confused(exercise: str, answer: Any, cm: np.ndarray,
                        classes: Sequence[str] | None = None) -> Verdict:
    """``answer`` must be ``(true, predicted)`` of the largest off-diagonal cell of ``cm``.

    Indices, or class names when ``classes`` is given. Ties: any cell with the largest count.
    """
    if answer is None or answer is Ellipsis:
        return report(exercise, False, "", "todavía no hay respuesta.")
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, -1)
    expected = tuple(int(v) for v in np.unravel_index(np.argmax(off), cm.shape))
    answer = plain(answer)
    answer = tuple(answer.tolist()) if isinstance(answer, np.ndarray) else answer
    if classes is not None and isinstance(answer, tuple):
        answer = tuple(list(classes).index(v) if v in classes else -1 for v in answer)
    pair = tuple(as_integer(v) for v in answer) if isinstance(answer, tuple) else None
    if pair is None or None in pair:
        kind = "nombres de clase" if classes is not None else "índices"
        return report(exercise, False, "", f"se esperaba una pareja (real, predicha) de "
                      f"{kind}, no {shown_or_type(answer)}.")
    hint = "pon a cero (o a -1) la diagonal de una copia de cm y busca su máximo con np.argmax."
    if len(pair) != 2 or not all(0 <= v < len(cm) for v in pair):
        valid = (f"nombres de {list(classes)}" if classes is not None
                 else f"índices entre 0 y {len(cm) - 1}")
        return report(exercise, False, "", f"se esperaba una pareja (real, predicha) de "
                      f"{valid}.", hint)
    if pair[0] == pair[1]:
        return report(exercise, False, "", f"{pair} está en la diagonal: son aciertos, no "
                      "confusiones. Hay que excluir la diagonal.", hint)
    if pair == expected[::-1] and off[pair] < off[expected]:
        return report(exercise, False, "", f"{pair} está al revés: cm[real, predicha], la "
                      "fila es la clase real.", hint)
    ok = off[pair] == off[expected]  # any cell with the maximal count is a right answer
    shown = pair if classes is None else (classes[pair[0]], classes[pair[1]])
    return report(exercise, bool(ok), f"correcto: {shown}, {int(cm[pair])} imágenes.",
                  f"{pair} tiene {int(cm[pair])} imágenes; la confusión más frecuente tiene "
                  f"{int(off[expected])}.", hint)


@graded
def check_paired_standard_error(exercise: str, func: Callable) -> Verdict:
    """``func(correct_a, correct_b)`` (booleans [N]: whether models A and B got each image
    right) must give the paired standard error of ``accuracy(A) - accuracy(B)``, ``s_d / sqrt(N)``
    (``s_d`` with ddof 0 or 1: both are accepted); checked on unseen, correlated models."""
    rng = np.random.default_rng(41)
    hint = ("d = (acierta A) - (acierta B) por imagen; su desviación típica entre la raíz del "
            "número de imágenes.")
    for n in (150, 61):
        a = rng.random(n) < 0.8
        b = np.where(rng.random(n) < 0.85, a, ~a)  # agrees with A on most images
        ok, got = call(exercise, func, a.copy(), b.copy())
        if not ok:
            return Verdict(False)
        if as_number(got) is None:
            return report(exercise, False, "", f"la función devuelve {shown_or_type(got)}; se "
                          "esperaba un número (el error estándar).")
        got = as_number(got)
        d = a.astype(float) - b.astype(float)
        right = [d.std(ddof=k) / np.sqrt(n) for k in (0, 1)]
        if any(np.isclose(got, r, rtol=1e-6, atol=0) for r in right):
            continue
        pa, pb = a.mean(), b.mean()
        mistakes = {
            "tratas las dos exactitudes como independientes: son las MISMAS imágenes, y la "
            "diferencia pareada tiene menos incertidumbre.":
                np.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n),
            "es el error estándar de UNA exactitud, no el de la diferencia.":
                np.sqrt(pa * (1 - pa) / n),
            "falta dividir entre la raíz del número de imágenes: eso es la desviación típica de "
            "d, no el error estándar de su media.": d.std(ddof=1),
            "está en puntos porcentuales: se pide como fracción.": 100 * right[1]}
        for message, wrong in mistakes.items():
            if np.isclose(got, wrong, rtol=1e-6) or np.isclose(got, wrong * np.sqrt(
                    (n - 1) / n), rtol=1e-6):
                return report(exercise, False, "", message, hint)
        return report(exercise, False, "", "no coincide con s_d / √n.", hint)
    return report(exercise, True, "correcto: error estándar pareado (comprobado con modelos "
                  "nuevos).", "")

@graded
def check_paired_bootstrap(exercise: str, func: Callable) -> Verdict:
    """``func(a, b)`` must give ``(mean of a - b, low, high)``: the 95 % percentile bootstrap
    interval resampling the *pairs*. Checked on unseen paired data; any random generator is
    accepted (the ends must fall within the Monte Carlo error of the reference)."""
    from helpers.core.intervals import bootstrap_mean

    rng = np.random.default_rng(23)
    base = rng.normal(0.0, 1.0, 60)  # large spread shared by a and b: pairing matters
    a, b = base + rng.normal(0.15, 0.1, 60), base
    ok, got = call(exercise, func, a.copy(), b.copy())
    if not ok:
        return Verdict(False)
    values = _three_numbers(got)
    if values is None:
        return report(exercise, False, "", f"se esperaba (media, extremo inferior, extremo "
                      f"superior), tres números; la función devolvió {shown_or_type(got)}.")
    ref = bootstrap_mean(a - b, n_boot=20000)
    mean, low, high = values
    width = ref.high - ref.low
    hint = ("remuestrea los ÍNDICES de las imágenes (los mismos para a y b), calcula la media de "
            "a - b en cada remuestreo y toma los percentiles 2,5 y 97,5 de esas medias.")
    if not np.isclose(mean, ref.value, rtol=1e-6, atol=1e-9):
        return report(exercise, False, "", "el primer número debe ser la media de a - b.", hint)
    if low > high:
        return report(exercise, False, "", "el extremo inferior es mayor que el superior.", hint)
    if abs(low - ref.low) <= 0.15 * width and abs(high - ref.high) <= 0.15 * width:
        return report(exercise, True, "correcto: intervalo pareado del 95 % por bootstrap.", "")
    spread = np.percentile(a - b, [2.5, 97.5])
    if np.allclose([low, high], spread, rtol=0.05):
        return report(exercise, False, "", "ese es el intervalo de las diferencias de cada imagen, "
                      "no el de su MEDIA: hay que remuestrear y promediar.", hint)
    if high - low > 3 * width:
        return report(exercise, False, "", "el intervalo es demasiado ancho: ¿remuestreaste a y b "
                      "por separado? Así se pierde el emparejamiento (mismas imágenes).", hint)
    return report(exercise, False, "", "los extremos no coinciden con un intervalo del 95 % "
                  "(percentiles 2,5 y 97,5 de las medias remuestreadas).", hint)


def _three_numbers(value: Any) -> tuple[float, float, float] | None:
    """``(value, low, high)`` from a sequence of three numbers or an object with those fields."""
    if all(hasattr(value, f) for f in ("value", "low", "high")):
        value = (value.value, value.low, value.high)
    value = plain(value)
    value = tuple(value.tolist()) if isinstance(value, np.ndarray) else value
    if not isinstance(value, tuple) or len(value) != 3 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    return tuple(float(v) for v in value) if all(np.isfinite(value)) else None


@graded
def check_accuracy_function(exercise: str, func: Callable) -> Verdict:
    """``func(cm)`` must give the overall accuracy of a confusion matrix ``cm[real, predicted]``;
    checked on unseen matrices with unequal classes (where balanced accuracy differs)."""
    rng = np.random.default_rng(17)
    matrices = [np.array([[50, 2, 3], [10, 5, 0], [4, 1, 25]]),
                rng.integers(0, 9, (4, 4)) + np.diag([40, 3, 12, 0])]
    got = []
    for cm in matrices:
        ok, value = call(exercise, func, cm.copy())
        if not ok:
            return Verdict(False)
        got.append(as_number(value))
    if None in got:
        return report(exercise, False, "", "la función debe devolver un número (la exactitud).")
    acc = np.array([np.trace(cm) / cm.sum() for cm in matrices])
    mistakes = {
        "es la media de las exactitudes por clase (exactitud equilibrada): coincide con la "
        "exactitud solo si todas las clases tienen el mismo número de imágenes.":
            np.array([np.mean(np.diag(cm) / np.maximum(cm.sum(1), 1)) for cm in matrices]),
        "dividiste entre el número de clases, no entre el número de imágenes.":
            np.array([np.trace(cm) / len(cm) for cm in matrices]),
        "es la tasa de error (1 - exactitud).": 1 - acc,
        "es un porcentaje: la exactitud se pide como fracción entre 0 y 1.": 100 * acc}
    return diagnose(exercise, np.ravel(got), acc, mistakes,
                    "aciertos (la diagonal) entre el total de imágenes de la matriz.")


def check_paired_interval(exercise: str, answer: Any, a, b, hint: str,
                          mistakes: dict[str, tuple] | None = None) -> Verdict:
    """``answer`` must be ``(mean of a - b, low, high)``, the 95 % paired bootstrap interval of
    an analysis whose per-image values ``a`` and ``b`` the caller recomputed. Any bootstrap
    generator is accepted (the ends within the Monte Carlo error); ``mistakes`` maps a message to
    the ``(a, b)`` a typical wrong analysis would compare (a reversed difference is always named).
    """
    from helpers.core.intervals import bootstrap_paired_difference

    values = _three_numbers(answer)
    if values is None:
        return report(exercise, False, "", f"se esperaba (media, extremo inferior, extremo "
                      f"superior), tres números; tu respuesta es {shown_or_type(answer)}.", hint)
    a, b = np.asarray(a, float), np.asarray(b, float)
    ref = bootstrap_paired_difference(a, b, n_boot=20000)
    width = ref.high - ref.low
    mean, low, high = values

    def close(x: float, y: float) -> bool:
        return bool(np.isclose(x, y, rtol=1e-3, atol=1e-3 * max(width, 1e-9)))

    if not close(mean, ref.value):
        wrong = {"la diferencia está al revés: se pide la primera medida menos la segunda.":
                 (b, a), **(mistakes or {})}
        for message, (wa, wb) in wrong.items():
            if close(mean, float(np.mean(np.asarray(wa, float) - np.asarray(wb, float)))):
                return report(exercise, False, "", message, hint)
        return report(exercise, False, "", "la media de las diferencias no coincide con la del "
                      "análisis pedido.", hint)
    if low > high or abs(low - ref.low) > 0.15 * width or abs(high - ref.high) > 0.15 * width:
        return report(exercise, False, "", "la media es correcta, pero el intervalo no es el "
                      "del 95 % por bootstrap PAREADO de esa media.", hint)
    return report(exercise, True, f"correcto (n = {len(a)} imágenes; diferencia media dentro "
                  "de su intervalo del 95 %).", "")


@graded
def check_second_choice_fraction(exercise: str, answer: Any, probabilities, labels) -> Verdict:
    """``answer``: among the errors (argmax != label), the fraction whose true class is the
    second most probable one ("near misses"), from ``probabilities`` [N, classes]."""
    p, y = np.asarray(probabilities), np.asarray(labels)
    order = np.argsort(-p, axis=1, kind="stable")
    errors = order[:, 0] != y
    second = order[:, 1] == y
    hint = ("quédate con las imágenes mal clasificadas; en cada una, ordena las clases por "
            "probabilidad y mira si la real es la segunda.")
    got = as_number(answer)
    if got is None:
        return report(exercise, False, "", f"tu respuesta es {shown_or_type(answer)}; se "
                      "esperaba un número entre 0 y 1.", hint)
    expected = second[errors].mean()
    ascending = np.argsort(p, axis=1, kind="stable")[:, 1] == y
    mistakes = {
        "dividiste entre TODAS las imágenes; se pide la fracción de los errores.":
            second.sum() / len(y),
        "es un recuento; se pide la fracción de los errores (entre 0 y 1).": second[errors].sum(),
        "es un porcentaje; se pide una fracción entre 0 y 1.": 100 * expected,
        "ordenaste de menor a mayor probabilidad: esa es la segunda clase MENOS probable.":
            ascending[errors].mean(),
        "es la exactitud top-2 (aciertos incluidos); se pide la fracción de los ERRORES.":
            (errors & second | ~errors).mean()}
    return diagnose(exercise, np.array(got), np.array(expected),
                    {k: np.array(float(v)) for k, v in mistakes.items()}, hint)
