"""Guided Grad-CAM (Selvaraju et al., 2017).

Lesson: ``04_guided_backprop_y_guided_grad_cam.ipynb``.
"""

from __future__ import annotations

from torch import Tensor, nn

from helpers.torch.explain._grad_cam import grad_cam_map
from helpers.torch.explain._guided_backprop import guided_gradient
from helpers.torch.explain.base import Layer, Target, explaining, to_output


def guided_grad_cam(model: nn.Module, x: Tensor, layer: Layer, target: Target = None) -> Tensor:
    """Guided backprop [N,C,H,W] times the bilinearly upsampled Grad-CAM map of ``layer``.

    The target is resolved once (by the Grad-CAM pass) and shared by both factors. Captum's
    ``GuidedGradCam`` upsamples with ``interpolate_mode="nearest"`` by default; this one uses
    bilinear like :func:`grad_cam` (Captum's ``interpolate_mode="bilinear"`` gives the same).
    """
    with explaining(model, x) as ctx:
        cam, t = grad_cam_map(model, ctx.x, layer, target)
        guided, _ = guided_gradient(model, ctx.x, t)
        return to_output(guided * cam)
