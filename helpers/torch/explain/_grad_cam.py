"""Grad-CAM (Selvaraju et al., 2017). Lesson: ``03_grad_cam.ipynb``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers.torch.explain.base import (
    Layer,
    Target,
    explaining,
    hooks,
    logits_of,
    pick,
    resolve_layer,
    resolve_target,
    to_output,
)


def grad_cam(model: nn.Module, x: Tensor, layer: Layer, target: Target = None) -> Tensor:
    """Grad-CAM map [N,H,W] of the target's logit at ``layer`` (a module or a name: "layer4").

    ``ReLU(sum_k alpha_k A^k)`` with ``alpha_k`` the spatial mean of ``d f_t / d A^k``, then
    upsampled bilinearly (``align_corners=False``) to the input's H x W. One forward and one
    backward for the whole batch; the backward stops at ``layer``.
    """
    with explaining(model, x) as ctx:
        cam, _ = grad_cam_map(model, ctx.x, layer, target)
        return to_output(cam[:, 0])


def grad_cam_map(model: nn.Module, x: Tensor, layer: Layer,
                 target: Target) -> tuple[Tensor, Tensor]:
    """Upsampled Grad-CAM [N,1,H,W] of a prepared batch, and the resolved targets."""
    acts, grads, t = layer_activation_gradient(model, x, layer, target)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False), t


def layer_activation_gradient(model: nn.Module, x: Tensor, layer: Layer,
                              target: Target) -> tuple[Tensor, Tensor, Tensor]:
    """Activations A [N,K,h,w] of ``layer``, ``d f_t / d A`` and the targets.

    A forward hook swaps the layer's output for a grad-requiring leaf (returned through a clone,
    so later in-place ops such as ``out += identity`` stay legal). With frozen parameters and
    ``x`` not requiring grad, no graph is built below the layer.
    """
    module = resolve_layer(model, layer)
    captured: list[Tensor] = []

    def capture(_module: nn.Module, _inputs: object, out: object) -> Tensor:
        if not isinstance(out, Tensor) or out.dim() != 4:
            raise ValueError(f"Grad-CAM needs a layer with a [N,K,h,w] output, {layer!r} gives "
                             f"{tuple(out.shape) if isinstance(out, Tensor) else type(out)}")
        captured.append(out.detach().requires_grad_())
        return captured[-1].clone()

    with hooks() as handles:
        handles.append(module.register_forward_hook(capture))
        logits = logits_of(model, x.detach())
    if len(captured) != 1:
        raise ValueError(f"layer {layer!r} ran {len(captured)} times in one forward pass; "
                         "Grad-CAM needs a module that runs exactly once")
    t = resolve_target(target, logits)
    score = pick(logits, t).sum()
    if not score.requires_grad:
        raise ValueError(f"the model's output does not depend on layer {layer!r}")
    (grads,) = torch.autograd.grad(score, captured[0])
    return captured[0].detach(), grads, t
