"""Tiny models whose explanations can be worked out by hand (cf. Captum's ``basic_models.py``).

All take image batches [N,C,H,W] and return logits [N,K]; none has a ``normalization``
attribute, so the explainers treat their inputs as raw pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BasicModel2(nn.Module):
    """``f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2))`` on images [N,1,1,2] = (x1, x2)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the model a device and a dtype

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x[:, 0, 0, 0], x[:, 0, 0, 1]
        return F.relu(F.relu(x1) - 1 - F.relu(x2) + self.dummy)[:, None]


class ConvGapLinear(nn.Module):
    """conv (3x3, pad 1) -> global average pool -> linear: Grad-CAM has a closed form.

    ``d f_c / d A^k = w_ck / (h w)`` at every position, so ``alpha_k = w_ck / (h w)`` and the
    map is ``ReLU(sum_k w_ck A^k) / (h w)``. ``stride=2`` halves the map (then upsampled).
    """

    def __init__(self, in_ch: int = 3, hidden: int = 4, classes: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, hidden, 3, stride=stride, padding=1)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class PixelLinear(nn.Module):
    """Two logits ``[sum_i w_i x_i, 0]``: softmax class 0 is ``sigmoid(w . x)``."""

    def __init__(self, weights: Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(weights.clone().float())

    def forward(self, x: Tensor) -> Tensor:
        s = (x * self.w).flatten(1).sum(dim=1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def ln3_pixels(*signs: int, shape: tuple[int, ...]) -> PixelLinear:
    """A :class:`PixelLinear` with weights ``sign * ln 3`` (sigmoid(ln 3) = 3/4)."""
    return PixelLinear(torch.tensor(signs, dtype=torch.float32).reshape(shape) * math.log(3))


class TwoUnitRelu(nn.Module):
    """``out = 2 ReLU(a - b) - 3 ReLU(a + b)`` on images [N,1,1,2] = (a, b).

    At a=2, b=1 both units are active: gradient (2 - 3, -2 - 3) = (-1, -5); guided backprop
    keeps only the positive upstream gradient 2 of the first unit: (2, -2).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(2, 2, bias=False)
        self.out = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.tensor([[1.0, -1.0], [1.0, 1.0]]))
            self.out.weight.copy_(torch.tensor([[2.0, -3.0]]))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.hidden(x.flatten(1))))


class SmallConvNet(nn.Module):
    """conv -> relu -> conv -> relu (+ skip) -> pool -> linear, with the ReLU written ``how``.

    ``how``: "module" (two ``nn.ReLU``), "shared_inplace" (one ``nn.ReLU(inplace=True)`` used
    twice, as in torchvision's ResNet blocks), "functional" (``F.relu``), "method"
    (``x.relu()`` / ``x.relu_()``), "torch" (``torch.relu`` / ``torch.relu_``) or "none" (no
    activation: a linear network). Same seed, same weights for every ``how``. ``fail = True``
    makes the forward raise after the second activation (to test cleanup on errors).
    """

    def __init__(self, how: str = "module", seed: int = 0) -> None:
        super().__init__()
        self.how, self.fail = how, False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
            self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
            self.fc = nn.Linear(6, 4)
        if how == "module":
            self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        elif how == "shared_inplace":
            self.relu = nn.ReLU(inplace=True)

    def act(self, x: Tensor, i: int) -> Tensor:
        how = self.how
        if how == "module":
            return (self.relu1 if i == 1 else self.relu2)(x)
        if how == "shared_inplace":
            return self.relu(x)
        if how == "functional":
            return F.relu(x)
        if how == "method":
            return x.relu() if i == 1 else x.relu_()
        if how == "torch":
            return torch.relu(x) if i == 1 else torch.relu_(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.conv1(x), 1)
        out = self.conv2(h)
        out += h  # in-place residual, as in torchvision's BasicBlock
        out = self.act(out, 2)
        if self.fail:
            raise RuntimeError("failure on purpose inside the forward pass")
        return self.fc(out.mean(dim=(2, 3)))


def cifar_resnet18(seed: int = 0) -> nn.Module:
    """``resnet18_cifar(weights=None)`` with fixed random weights, in eval mode.

    ``xai_trained`` is set to True to keep the untrained-model warning out of the way (it has
    its own test).
    """
    from helpers.torch.models import resnet18_cifar

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet18_cifar(weights=None).eval()
    model.xai_trained = True
    return model


def random_images(n: int, size: int = 32, seed: int = 0) -> Tensor:
    """A batch [n,3,size,size] of random CIFAR-normalized images (uniform pixels)."""
    from helpers.torch.normalization import CIFAR10

    gen = torch.Generator().manual_seed(seed)
    return CIFAR10.normalize(torch.rand(n, 3, size, size, generator=gen))
