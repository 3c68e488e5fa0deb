"""Checks for the notebooks' exercises: clear feedback in Spanish, not a bare assertion trace.

Each check prints what is right or wrong and a hint. With ``$XAI_STRICT_CHECKS=1`` (set by
``make test``) a failed check also raises :class:`ExerciseError`, so CI notices a broken solution.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

STRICT_ENV = "XAI_STRICT_CHECKS"


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


def check_value(exercise: str, answer: Any, expected: Any, hint: str = "",
                rtol: float = 1e-5, atol: float = 1e-8) -> Verdict:
    """Compare a number, array or exact value with the expected one."""
    if answer is None or answer is Ellipsis:
        return report(exercise, False, "", "todavía no hay respuesta.", hint)
    if numeric_like(answer) and numeric_like(expected):
        a, e = np.asarray(answer), np.asarray(expected)
        if a.shape != e.shape:
            return report(exercise, False, "", f"la forma es {a.shape}, se esperaba {e.shape}.",
                          hint)
        ok = bool(np.allclose(a, e, rtol=rtol, atol=atol))
    else:
        try:
            ok = bool(answer == expected)
        except ValueError:  # element-wise comparison of arrays
            ok = bool(np.array_equal(np.asarray(answer), np.asarray(expected)))
    shown = _show(answer)
    return report(exercise, ok, f"correcto ({shown}).", f"tu respuesta es {shown}, que no es la "
                  "esperada.", hint)


def _show(value: Any) -> str:
    """A short text for an answer: small arrays in full, large ones by shape."""
    if not numeric_like(value):
        return repr(value)
    arr = np.asarray(value)
    if arr.size > 8:
        return f"array de forma {arr.shape}"
    return np.array2string(arr, precision=4)


def numeric_like(value: Any) -> bool:
    """Whether ``value`` is a number or an array of numbers."""
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


def check_function(exercise: str, func: Callable, cases: list[tuple[tuple, Any]],
                   hint: str = "", rtol: float = 1e-4, atol: float = 1e-6) -> Verdict:
    """Call ``func(*args)`` on each case and compare with its expected result."""
    for i, (args, expected) in enumerate(cases, start=1):
        try:
            got = func(*args)
        except NotImplementedError:
            return report(exercise, False, "", "la función aún no está implementada.", hint)
        except Exception as err:  # the student sees the error, briefly
            return report(exercise, False, "", f"la función falla en el caso {i}: "
                          f"{type(err).__name__}: {err}", hint)
        got, want = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
        if got.shape != want.shape:
            return report(exercise, False, "", f"caso {i}: forma {got.shape}, se esperaba "
                          f"{want.shape}.", hint)
        if not np.allclose(got, want, rtol=rtol, atol=atol):
            err = float(np.max(np.abs(got - want)))
            return report(exercise, False, "", f"caso {i}: el resultado difiere (error máximo "
                          f"{err:.3g}).", hint)
    n = len(cases)
    return report(exercise, True, f"correcto en {n} caso{'s' if n != 1 else ''} de prueba.", "")


def _diagnose(exercise: str, got: Any, expected: np.ndarray, mistakes: dict[str, np.ndarray],
              hint: str) -> Verdict:
    """Pass if ``got`` matches ``expected``; else name the typical mistake it matches, if any."""
    got = np.asarray(got, dtype=float)
    if got.shape != expected.shape:
        return report(exercise, False, "", f"la forma es {got.shape}, se esperaba "
                      f"{expected.shape}.", hint)
    if np.allclose(got, expected, rtol=1e-4, atol=1e-6):
        return report(exercise, True, "correcto.", "")
    for mistake, wrong in mistakes.items():
        if np.allclose(got, wrong, rtol=1e-4, atol=1e-6):
            return report(exercise, False, "", mistake, hint)
    return report(exercise, False, "", "el resultado no coincide con la fórmula.", hint)


def _call(exercise: str, func: Callable, *args: Any) -> tuple[bool, Any]:
    try:
        return True, func(*args)
    except NotImplementedError:
        report(exercise, False, "", "la función aún no está implementada.")
    except Exception as err:  # the student sees the error, briefly
        report(exercise, False, "", f"la función falla: {type(err).__name__}: {err}")
    return False, None


def check_grad_cam_formula(exercise: str, func: Callable) -> Verdict:
    """``func(A, G)`` with A, G torch tensors [K,h,w] must return ReLU(sum_k mean(G_k) A_k)."""
    import torch

    rng = np.random.default_rng(7)
    a, g = rng.normal(size=(6, 4, 5)), rng.normal(size=(6, 4, 5))
    ok, got = _call(exercise, func, torch.tensor(a), torch.tensor(g))
    if not ok:
        return Verdict(False)
    got = got.detach().numpy() if hasattr(got, "detach") else got
    alpha = g.mean(axis=(1, 2))[:, None, None]
    linear = (alpha * a).sum(0)
    mistakes = {
        "falta la ReLU: el mapa tiene valores negativos.": linear,
        "los pesos usan la suma de los gradientes, no su media espacial.":
            np.maximum((g.sum(axis=(1, 2))[:, None, None] * a).sum(0), 0),
        "se multiplica por el gradiente píxel a píxel en vez de por su media (α_k).":
            np.maximum((g * a).sum(0), 0),
    }
    return _diagnose(exercise, got, np.maximum(linear, 0), mistakes,
                     "α_k = media espacial de G_k; mapa = ReLU(Σ_k α_k A_k).")


def check_guided_relu_rule(exercise: str, func: Callable) -> Verdict:
    """``func(x, g)`` (ReLU input, gradient from above) must give guided backprop's gradient."""
    import torch

    x = np.array([-2.0, -0.5, 0.5, 1.0, 2.0, 3.0])
    g = np.array([1.0, -1.0, 2.0, -3.0, 0.5, 0.0])
    ok, got = _call(exercise, func, torch.tensor(x), torch.tensor(g))
    if not ok:
        return Verdict(False)
    got = got.detach().numpy() if hasattr(got, "detach") else got
    mistakes = {
        "esa es la regla del gradiente normal: también deja pasar gradientes negativos.":
            g * (x > 0),
        "esa es la regla de la deconvnet: ignora el signo de la entrada de la ReLU.":
            np.maximum(g, 0),
    }
    return _diagnose(exercise, got, np.maximum(g, 0) * (x > 0), mistakes,
                     "el gradiente pasa solo si la entrada de la ReLU era positiva Y el "
                     "gradiente que llega es positivo.")


def check_ig_linear(exercise: str, func: Callable) -> Verdict:
    """``func(w, x, x_base)`` must give IG of f(x) = w·x: exactly ``(x - x_base) * w``."""
    import torch

    rng = np.random.default_rng(3)
    w, x, b = (rng.normal(size=(3, 4, 4)) for _ in range(3))
    ok, got = _call(exercise, func, torch.tensor(w), torch.tensor(x), torch.tensor(b))
    if not ok:
        return Verdict(False)
    got = got.detach().numpy() if hasattr(got, "detach") else got
    mistakes = {"falta el factor (x - x'): eso es solo el gradiente medio.": w,
                "se multiplicó por x en vez de por (x - x').": x * w,
                "el signo está invertido: es (x - x'), no (x' - x).": (b - x) * w}
    return _diagnose(exercise, got, (x - b) * w, mistakes,
                     "en un modelo lineal el gradiente es w en todo el camino; IG = (x - x') · w.")


def check_cutmix_weight(exercise: str, func: Callable) -> Verdict:
    """``func(lam, y0, y1, x0, x1, h, w)`` must give the partner's label weight after clipping.

    The box [y0, y1) x [x0, x1) is already clipped to the h x w image; ``lam`` is the value
    drawn before clipping. The right answer is the pasted pixel fraction, not ``1 - lam``.
    """
    cases = [(0.5, 0, 12, 20, 32, 32, 32), (0.3, 5, 25, 0, 9, 32, 40),
             (0.9, 10, 14, 10, 14, 20, 20)]
    got, expected, unadjusted = [], [], []
    for case in cases:
        ok, value = _call(exercise, func, *case)
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
    return _diagnose(exercise, got, np.array(expected), mistakes,
                     "peso de la pareja = píxeles pegados / píxeles totales = "
                     "(y1 - y0)(x1 - x0) / (alto · ancho).")



def check_best_epoch(exercise: str, func: Callable) -> Verdict:
    """``func(history)`` must give the 1-based epoch of the first highest ``val_accuracy``."""
    history = {"val_accuracy": [0.2, 0.5, 0.7, 0.6, 0.7, 0.65],
               "val_loss": [3.0, 2.0, 1.5, 1.6, 1.4, 1.45]}
    ok, got = _call(exercise, func, history)
    if not ok:
        return Verdict(False)
    try:
        value = int(got)
    except (TypeError, ValueError):
        return report(exercise, False, "", f"se esperaba un entero, no {got!r}.")
    mistakes = {2: "es el índice empezando en 0: las épocas se cuentan desde 1.",
                5: "es la última época con el máximo (o la de menor val_loss): con empate "
                   "EarlyStopping se queda con la primera, y aquí se vigila val_accuracy.",
                6: "es la última época entrenada, no la mejor."}
    hint = "np.argmax(historia['val_accuracy']) da la primera posición del máximo; suma 1."
    if value in mistakes:
        return report(exercise, False, "", f"{value} {mistakes[value]}", hint)
    return report(exercise, value == 3, "correcto (época 3 en el historial de prueba).",
                  f"{value} no es la época con mayor val_accuracy.", hint)


def check_brightness(exercise: str, func: Callable) -> Verdict:
    """``func(images, delta)`` on raw [0, 255] pixels must give ``clip(x + 255 delta, 0, 255)``."""
    x = np.linspace(0, 255, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    delta = 0.3
    ok, got = _call(exercise, func, x.copy(), delta)
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
    return _diagnose(exercise, got, np.clip(x + 255 * delta, 0, 255), mistakes,
                     "brillo(x, delta) = clip(x + 255·delta, 0, 255).")


def check_model_choice(exercise: str, answer: Any, val_accuracy: dict[str, float],
                       test_accuracy: dict[str, float]) -> Verdict:
    """The variant chosen must be the best on validation (not on test)."""
    if answer is None or answer is Ellipsis:
        return report(exercise, False, "", "todavía no hay respuesta.")
    if answer not in val_accuracy:
        return report(exercise, False, "", f"{answer!r} no es una de las variantes: "
                      f"{', '.join(map(repr, val_accuracy))}.")
    best = max(val_accuracy, key=val_accuracy.get)  # first of the best on ties (dict order)
    if answer == best:
        return report(exercise, True, f"correcto: {answer!r} tiene la mayor exactitud en "
                      "validación.", "")
    if answer == max(test_accuracy, key=test_accuracy.get):
        return report(exercise, False, "", f"{answer!r} es la mejor en PRUEBA: elegir con el "
                      "conjunto de prueba lo convierte en parte del ajuste y su exactitud deja "
                      "de ser una estimación honesta.", "elige con val_accuracy.")
    return report(exercise, False, "", f"{answer!r} no es la de mayor exactitud en validación.",
                  "usa max(exactitudes_val, key=exactitudes_val.get).")


def check_grad_cam_channels_last(exercise: str, func: Callable) -> Verdict:
    """``func(A, G)``, numpy A and G [h, w, K] (Keras order): ReLU(sum_k mean(G_k) A_k) [h, w]."""
    rng = np.random.default_rng(11)
    a, g = rng.normal(size=(4, 5, 6)), rng.normal(size=(4, 5, 6))
    ok, got = _call(exercise, func, a.copy(), g.copy())
    if not ok:
        return Verdict(False)
    alpha = g.mean(axis=(0, 1))
    linear = (a * alpha).sum(-1)
    mistakes = {
        "falta la ReLU: el mapa tiene valores negativos.": linear,
        "los pesos usan la suma de los gradientes, no su media espacial.":
            np.maximum((a * g.sum(axis=(0, 1))).sum(-1), 0),
        "se multiplica por el gradiente píxel a píxel en vez de por su media (α_k).":
            np.maximum((a * g).sum(-1), 0),
        "la media se tomó sobre los canales (eje -1); en Keras los canales van al final y "
        "α_k es la media sobre el alto y el ancho (ejes 0 y 1).":
            np.maximum(a.sum(-1) * g.mean(-1), 0),
    }
    return _diagnose(exercise, np.asarray(got), np.maximum(linear, 0), mistakes,
                     "α = G.mean(axis=(0, 1)); mapa = ReLU((A * α).sum(axis=-1)).")


def check_per_class_accuracy(exercise: str, func: Callable) -> Verdict:
    """``func(cm)`` with ``cm[true, predicted]`` must give each class's recall (row-wise)."""
    cm = np.array([[5, 1, 0], [2, 2, 4], [0, 3, 9]])
    ok, got = _call(exercise, func, cm.copy())
    if not ok:
        return Verdict(False)
    diag = np.diag(cm).astype(float)
    mistakes = {
        "se dividió por la suma de cada COLUMNA (eso es la precisión de la clase predicha); "
        "las filas son la clase real.": diag / cm.sum(0),
        "se dividió por el total de imágenes, no por las de cada clase.": diag / cm.sum(),
    }
    return _diagnose(exercise, np.asarray(got), diag / cm.sum(1), mistakes,
                     "exactitud de la clase k = cm[k, k] / cm[k, :].sum().")


def check_most_confused(exercise: str, answer: Any, cm: np.ndarray) -> Verdict:
    """``answer`` must be ``(true, predicted)`` of the largest off-diagonal cell of ``cm``."""
    if answer is None or answer is Ellipsis:
        return report(exercise, False, "", "todavía no hay respuesta.")
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, -1)
    expected = tuple(int(v) for v in np.unravel_index(np.argmax(off), cm.shape))
    try:
        pair = tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        return report(exercise, False, "", f"se esperaba una pareja (real, predicha), no "
                      f"{answer!r}.")
    hint = "pon a cero (o a -1) la diagonal de una copia de cm y busca su máximo con np.argmax."
    if len(pair) != 2 or not all(0 <= v < len(cm) for v in pair):
        return report(exercise, False, "", f"se esperaba una pareja (real, predicha) de "
                      f"índices entre 0 y {len(cm) - 1}, no {answer!r}.", hint)
    if pair[0] == pair[1]:
        return report(exercise, False, "", f"{pair} está en la diagonal: son aciertos, no "
                      "confusiones. Hay que excluir la diagonal.", hint)
    if pair == expected[::-1] and off[pair] < off[expected]:
        return report(exercise, False, "", f"{pair} está al revés: cm[real, predicha], la "
                      "fila es la clase real.", hint)
    ok = off[pair] == off[expected]  # any cell with the maximal count is a right answer
    return report(exercise, bool(ok), f"correcto: {pair}, {int(cm[pair])} imágenes.",
                  f"{pair} tiene {int(cm[pair])} imágenes; la confusión más frecuente tiene "
                  f"{int(off[expected])}.", hint)
