"""Integrated Gradients (Sundararajan et al., 2017). Lesson: ``06_integrated_gradients.ipynb``.

``IG_i = (x_i - x'_i) * integral_0^1 d f_t(x' + a (x - x')) / d x_i da``, with the quadrature
rules and the path integral of :mod:`helpers.core.attribution` (shared with the Keras track).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from helpers.core.attribution import path_integral, quadrature
from helpers.core.validate import batch_size_or
from helpers.torch.explain._references import Baseline, make_reference
from helpers.torch.explain.base import (
    Target,
    explaining,
    logits_of,
    pick,
    resolve_target,
    to_output,
)
from helpers.torch.normalization import Normalization

DEFAULT_BATCH_SIZE = 64  # interpolated images per forward/backward


def integrated_gradients(model: nn.Module, x: Tensor, target: Target = None,
                         baseline: Baseline = None, steps: int = 50,
                         batch_size: int | None = None, method: str = "gausslegendre",
                         seed: int | None = None, normalization: Normalization | None = None,
                         return_gap: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Integrated Gradients [N,C,H,W] of the target's logit: ``(x - x') * weighted mean grad``.

    ``baseline`` x' (:func:`make_reference`, built in the model's input space from
    ``normalization``, else ``model.normalization``, else raw pixels): None or ``"black"`` =
    black image (pixel 0, which is not 0 in a normalized space), ``"gray"``, ``"blur"``,
    ``"mean"``, ``"noise"`` (drawn with ``seed``) or a tensor broadcastable to ``x``. The
    N x steps interpolated images are processed in chunks of ``batch_size`` (default 64).
    ``method``: a rule of :data:`helpers.core.attribution.QUADRATURES`. With
    ``return_gap=True`` also returns ``gap[n] = sum(attr[n]) - (f_t(x_n) - f_t(x'_n))``
    (completeness check).
    """
    with explaining(model, x, normalization) as ctx:
        x = ctx.x
        ref = make_reference(baseline, x, ctx.normalization, seed)
        with torch.inference_mode():
            logits = logits_of(model, x)
        t = resolve_target(target, logits)
        attr = (x - ref) * path_gradient(model, x, ref, t, method, steps,
                                         batch_size_or(DEFAULT_BATCH_SIZE, batch_size))
        if not return_gap:
            return to_output(attr)
        with torch.inference_mode():
            delta = pick(logits, t) - pick(logits_of(model, ref), t)
        return to_output(attr), to_output(attr.sum(dim=(1, 2, 3)) - delta)


def path_gradient(model: nn.Module, x: Tensor, ref: Tensor, t: Tensor, method: str,
                  steps: int, batch_size: int) -> Tensor:
    """``sum_s w_s * grad f_t(ref + a_s (x - ref))`` per image, over chunks of images x steps."""
    alphas, weights = (x.new_tensor(v) for v in quadrature(method, steps))

    def gradient(points: Tensor, targets: Tensor) -> Tensor:
        points = points.detach().requires_grad_()
        (grad,) = torch.autograd.grad(pick(logits_of(model, points), targets).sum(), points)
        return grad

    return path_integral(gradient, x, ref, t, alphas, weights, batch_size, torch.zeros_like(x))
