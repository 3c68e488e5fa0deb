"""Guided backpropagation (Springenberg et al., 2015).

Lesson: ``04_guided_backprop_y_guided_grad_cam.ipynb``.

Every ReLU run during the forward pass is swapped for :class:`GuidedReLU`, whose backward lets
through only positive gradients where the ReLU's input was positive. The swap is done by a
``TorchFunctionMode`` that intercepts the relu *calls*, not the ``nn.ReLU`` modules, so it is
right for ReLU modules, for one in-place ``nn.ReLU`` reused twice (torchvision's ResNet blocks,
where module backward hooks go wrong) and for ``F.relu`` / ``torch.relu`` / ``x.relu()``.
Other activations (``relu6``, ``leaky_relu``, ``clamp``) are left as they are.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from helpers.torch.explain.base import (
    Target,
    explaining,
    logits_of,
    pick,
    resolve_target,
    to_output,
)


class GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward ``max(grad, 0) * (relu(x) > 0)``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, inplace: bool = False) -> Tensor:
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_(min=0)
        else:
            out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0), None


_OUT_OF_PLACE = {torch.relu, torch.Tensor.relu}
_IN_PLACE = {torch.relu_, torch.Tensor.relu_}  # F.relu_ is torch.relu_


class GuidedReLUMode(TorchFunctionMode):
    """While active, every relu call runs :class:`GuidedReLU` (``nn.ReLU`` calls ``F.relu``)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.relu:
            inplace = kwargs.get("inplace", args[1] if len(args) > 1 else False)
            return GuidedReLU.apply(args[0], bool(inplace))
        if func in _OUT_OF_PLACE:
            return GuidedReLU.apply(args[0], False)
        if func in _IN_PLACE:
            return GuidedReLU.apply(args[0], True)
        return func(*args, **kwargs)


def guided_gradient(model: nn.Module, x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
    """Guided-backprop gradient [N,C,H,W] of a prepared batch, and the targets."""
    x = x.detach().requires_grad_()
    with GuidedReLUMode():  # only the forward: it records GuidedReLU nodes in the graph
        logits = logits_of(model, x)
    t = resolve_target(target, logits)
    (grad,) = torch.autograd.grad(pick(logits, t).sum(), x)
    return grad, t


def guided_backprop(model: nn.Module, x: Tensor, target: Target = None) -> Tensor:
    """Guided backpropagation [N,C,H,W] of the target's logit (signed, per channel).

    Equals the plain gradient on a network without ReLUs. One forward + one backward for the
    whole batch.
    """
    with explaining(model, x) as ctx:
        grad, _ = guided_gradient(model, ctx.x, target)
        return to_output(grad)
