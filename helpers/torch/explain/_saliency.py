"""Vanilla gradient saliency (Simonyan et al., 2014). Lesson: ``02_mapas_de_saliencia.ipynb``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from helpers.torch.explain.base import (
    Target,
    explaining,
    logits_of,
    pick,
    resolve_target,
    to_output,
)


def input_gradient(model: nn.Module, x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
    """d logit_t / d x of a prepared batch in one forward + one backward; also the targets."""
    x = x.detach().requires_grad_()
    logits = logits_of(model, x)
    t = resolve_target(target, logits)
    (grad,) = torch.autograd.grad(pick(logits, t).sum(), x)
    return grad, t


def saliency(model: nn.Module, x: Tensor, target: Target = None) -> Tensor:
    """Saliency map [N,H,W]: max over channels of ``|d f_t / d x|``, f_t the target's logit.

    ``target``: None (predicted class), an int, or one int per image. Batched: one forward and
    one backward pass for the whole batch (in eval mode each logit depends on its image only).
    """
    with explaining(model, x) as ctx:
        grad, _ = input_gradient(model, ctx.x, target)
        return to_output(grad.abs().amax(dim=1))
