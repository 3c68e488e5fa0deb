"""Exercise checks of the explanation methods.

Lessons: ``03_grad_cam.ipynb``, ``04_guided_backprop_y_guided_grad_cam.ipynb``,
``06_integrated_gradients.ipynb`` and ``14_grad_cam_e_integrated_gradients.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.checks import Verdict, call, diagnose


def check_grad_cam_formula(exercise: str, func: Callable) -> Verdict:
    """``func(A, G)`` with A, G torch tensors [K,h,w] must return ReLU(sum_k mean(G_k) A_k)."""
    import torch

    rng = np.random.default_rng(7)
    a, g = rng.normal(size=(6, 4, 5)), rng.normal(size=(6, 4, 5))
    ok, got = call(exercise, func, torch.tensor(a), torch.tensor(g))
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
    return diagnose(exercise, got, np.maximum(linear, 0), mistakes,
                     "α_k = media espacial de G_k; mapa = ReLU(Σ_k α_k A_k).")


def check_guided_relu_rule(exercise: str, func: Callable) -> Verdict:
    """``func(x, g)`` (ReLU input, gradient from above) must give guided backprop's gradient."""
    import torch

    x = np.array([-2.0, -0.5, 0.5, 1.0, 2.0, 3.0])
    g = np.array([1.0, -1.0, 2.0, -3.0, 0.5, 0.0])
    ok, got = call(exercise, func, torch.tensor(x), torch.tensor(g))
    if not ok:
        return Verdict(False)
    got = got.detach().numpy() if hasattr(got, "detach") else got
    mistakes = {
        "esa es la regla del gradiente normal: también deja pasar gradientes negativos.":
            g * (x > 0),
        "esa es la regla de la deconvnet: ignora el signo de la entrada de la ReLU.":
            np.maximum(g, 0),
    }
    return diagnose(exercise, got, np.maximum(g, 0) * (x > 0), mistakes,
                     "el gradiente pasa solo si la entrada de la ReLU era positiva Y el "
                     "gradiente que llega es positivo.")


def check_ig_linear(exercise: str, func: Callable) -> Verdict:
    """``func(w, x, x_base)`` must give IG of f(x) = w·x: exactly ``(x - x_base) * w``."""
    import torch

    rng = np.random.default_rng(3)
    w, x, b = (rng.normal(size=(3, 4, 4)) for _ in range(3))
    ok, got = call(exercise, func, torch.tensor(w), torch.tensor(x), torch.tensor(b))
    if not ok:
        return Verdict(False)
    got = got.detach().numpy() if hasattr(got, "detach") else got
    mistakes = {"falta el factor (x - x'): eso es solo el gradiente medio.": w,
                "se multiplicó por x en vez de por (x - x').": x * w,
                "el signo está invertido: es (x - x'), no (x' - x).": (b - x) * w}
    return diagnose(exercise, got, (x - b) * w, mistakes,
                     "en un modelo lineal el gradiente es w en todo el camino; IG = (x - x') · w.")


def check_grad_cam_channels_last(exercise: str, func: Callable) -> Verdict:
    """``func(A, G)``, numpy A and G [h, w, K] (Keras order): ReLU(sum_k mean(G_k) A_k) [h, w]."""
    rng = np.random.default_rng(11)
    a, g = rng.normal(size=(4, 5, 6)), rng.normal(size=(4, 5, 6))
    ok, got = call(exercise, func, a.copy(), g.copy())
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
    return diagnose(exercise, np.asarray(got), np.maximum(linear, 0), mistakes,
                     "α = G.mean(axis=(0, 1)); mapa = ReLU((A * α).sum(axis=-1)).")
