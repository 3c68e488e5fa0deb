"""Integrated Gradients (Sundararajan et al., 2017). Lesson: ``06_integrated_gradients.ipynb``.

``IG_i = (x_i - x'_i) * integral_0^1 d f_t(x' + a (x - x')) / d x_i da`` is approximated by a
quadrature rule: ``"gausslegendre"`` (default; Captum's default, exact for polynomials of degree
< 2 * steps) or ``"trapezoid"`` (``steps`` equally spaced points from 0 to 1, weights
``1/(steps-1)`` halved at both ends). Captum's ``"riemann_trapezoid"`` uses the same points but
weights ``1/steps``, so its attributions are ``(steps-1)/steps`` of ours.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers.normalization import Normalization
from helpers.torch_explain._core import (
    Target,
    chunks,
    explaining,
    logits_of,
    pick,
    resolve_target,
    to_output,
)

Baseline = str | Tensor | None
DEFAULT_BATCH_SIZE = 64  # interpolated images per forward/backward (fastest on 2 CPU cores)


def integrated_gradients(model: nn.Module, x: Tensor, target: Target = None,
                         baseline: Baseline = None, steps: int = 50,
                         batch_size: int | None = None, method: str = "gausslegendre",
                         seed: int | None = None, normalization: Normalization | None = None,
                         return_gap: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Integrated Gradients [N,C,H,W] of the target's logit: ``(x - x') * weighted mean grad``.

    ``baseline`` x' (built in the model's input space, from ``normalization``, else
    ``model.normalization``, else raw pixels): None or ``"black"`` = black image (pixel 0, which
    is not 0 in a normalized space); ``"blur"`` = x blurred by a Gaussian of sigma = max(H, W)/8
    pixels (4 at 32x32); ``"mean"`` = each image's mean colour; ``"noise"`` = uniform pixel noise
    in [0, 1] drawn with ``seed``; or a tensor broadcastable to ``x``. The N x steps interpolated
    images are processed in chunks of ``batch_size`` (default 64). With ``return_gap=True``
    also returns ``gap[n] = sum(attr[n]) - (f_t(x_n) - f_t(x'_n))`` (completeness check).
    """
    with explaining(model, x, normalization) as ctx:
        x = ctx.x
        ref = make_baseline(baseline, x, ctx.normalization, seed)
        with torch.inference_mode():
            logits = logits_of(model, x)
        t = resolve_target(target, logits)
        alphas, weights = quadrature(method, steps, x)
        attr = (x - ref) * path_gradient(model, x, ref, t, alphas, weights,
                                         batch_size or DEFAULT_BATCH_SIZE)
        if not return_gap:
            return to_output(attr)
        with torch.inference_mode():
            delta = pick(logits, t) - pick(logits_of(model, ref), t)
        return to_output(attr), to_output(attr.sum(dim=(1, 2, 3)) - delta)


def path_gradient(model: nn.Module, x: Tensor, ref: Tensor, t: Tensor, alphas: Tensor,
                  weights: Tensor, batch_size: int) -> Tensor:
    """``sum_s w_s * grad f_t(ref + a_s (x - ref))`` per image, over chunks of images x steps."""
    total = torch.zeros_like(x)
    steps = alphas.numel()
    for idx in chunks(x.shape[0] * steps, batch_size, x.device):
        img, step = idx // steps, idx % steps
        a = alphas[step].view(-1, 1, 1, 1)
        points = (ref[img] + a * (x[img] - ref[img])).requires_grad_()
        score = (pick(logits_of(model, points), t[img]) * weights[step]).sum()
        (grad,) = torch.autograd.grad(score, points)
        total.index_add_(0, img, grad)
    return total


def quadrature(method: str, steps: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Nodes in [0, 1] and weights summing to 1 of the rule ``method``."""
    if method == "gausslegendre" and steps >= 1:
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = 0.5 * (nodes + 1), 0.5 * w
    elif method == "trapezoid" and steps >= 2:
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
    else:
        raise ValueError(f"method must be 'gausslegendre' (steps >= 1) or 'trapezoid' "
                         f"(steps >= 2), got {method!r} with steps={steps}")
    return like.new_tensor(alphas), like.new_tensor(weights)


def make_baseline(baseline: Baseline, x: Tensor, normalization: Normalization,
                  seed: int | None = None) -> Tensor:
    """The reference image x', shaped like ``x``, in the model's input space."""
    if isinstance(baseline, Tensor):
        try:
            return baseline.to(device=x.device, dtype=x.dtype).expand_as(x).clone()
        except RuntimeError as err:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to "
                             f"{tuple(x.shape)}") from err
    if baseline is None or baseline == "black":
        return normalization.constant(x, 0.0)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if baseline == "blur":
        return gaussian_blur(x, sigma=max(x.shape[2:]) / 8)
    if baseline == "noise":
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        pixels = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return normalization.normalize(pixels)
    raise ValueError(f"baseline must be None, 'black', 'blur', 'mean', 'noise' or a tensor, "
                     f"got {baseline!r}")


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding (radius ``3 sigma``, capped by the size)."""
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[2:]) - 1))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
