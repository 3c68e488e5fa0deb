"""Strided 1x1 convolutions computed as subsampling followed by a stride-1 1x1 convolution.

A 1x1 convolution with stride ``s`` and no padding equals taking every ``s``-th pixel and then
applying the same 1x1 convolution with stride 1: the same outputs and the same gradients. Written
that way it never reaches oneDNN's strided 1x1 weight-gradient kernel, which on AVX2 CPUs (oneDNN
3.12 in torch 2.14) writes past its workspace in ``channels_last`` when the input has fewer
channels than its block of 8: the gradient of that convolution comes out wrong (about 150 times
too large in the ResNet-18's ``layer2.0.downsample.0`` at width 4) and the kernel's threads can
spin forever. Every model this package builds or trains uses this form (one code path on every
CPU and GPU; ``bench/bench_pointwise.py`` times it against the strided kernel).
Lesson: ``01_cifar10_modelo.ipynb``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SubsampledPointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with a 1x1 kernel, a stride and no padding, computed as a stride-1
    convolution of ``x[..., ::sh, ::sw]`` (same parameters, names and state dict). The
    subsampling is a 1x1 average pool with that stride: exact, and as fast as the strided
    convolution it replaces (slicing cost 9 % more per training step of the fast profile)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.avg_pool2d(x, 1, self.stride), self.weight, self.bias,
                        groups=self.groups)


def is_strided_pointwise(module: nn.Module) -> bool:
    """Whether ``module`` is a plain ``nn.Conv2d`` with a 1x1 kernel, a stride above 1 and no
    padding (the convolutions :func:`subsample_strided_pointwise` rewrites)."""
    return (type(module) is nn.Conv2d and module.kernel_size == (1, 1)
            and module.stride != (1, 1) and module.padding in ((0, 0), "valid"))


def subsample_strided_pointwise(model: nn.Module) -> nn.Module:
    """Turns every strided 1x1 convolution of ``model`` into a
    :class:`SubsampledPointwiseConv2d`, in place (the same module objects, parameters and hooks,
    so optimizers and hooks keep working), and returns ``model``."""
    for module in model.modules():
        if is_strided_pointwise(module):
            module.__class__ = SubsampledPointwiseConv2d
    return model
