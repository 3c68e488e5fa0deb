"""CIFAR-10 models: the adapted ResNet-18 and the reference ResNet-20.

Both take CIFAR-10 batches normalized as in :func:`helpers.data.load_cifar10` and carry that input
space as ``model.normalization``. ``model.xai_trained`` says whether the weights were trained for
CIFAR-10 (explainers warn when it is False). Lesson: ``01_cifar10_modelo.ipynb``.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from helpers.torch import normalization as norm
from helpers.torch.pointwise import subsample_strided_pointwise

NUM_CLASSES = 10


def resnet18_cifar(width: int = 64,
                   weights: Literal["imagenet"] | None = "imagenet") -> nn.Module:
    """torchvision's ResNet-18 adapted to 32x32 inputs, with ``width`` channels in its first stage.

    The 7x7 stride-2 ``conv1`` becomes 3x3 stride 1 and the max-pool is removed, so ``layer4``
    sees 4x4 maps instead of 1x1; ``fc`` has 10 outputs. The four stages have ``width``,
    ``2 width``, ``4 width`` and ``8 width`` channels: 64 is the standard ResNet-18, 16 a quarter
    of its channels (the fast profile's ``cifar_width``), same depth and module names. With
    ``weights="imagenet"`` a width-64 model starts from ImageNet weights (fetched by
    :mod:`helpers.data`; ``conv1`` keeps the central 3x3 taps of the pretrained 7x7 kernels).
    Other widths, or a missing weight file, start from torchvision's random initialization and a
    warning says so. The strided 1x1 shortcut convolutions subsample first
    (:mod:`helpers.torch.pointwise`: the same function, safe on AVX2 CPUs).
    """
    from torchvision.models import resnet18

    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int (64 = standard ResNet-18), got {width!r}")
    model = resnet18(weights=None)
    state = None
    if weights == "imagenet" and width != 64:
        warnings.warn(f"los pesos de ImageNet solo existen para el ancho 64: la ResNet-18 de "
                      f"ancho {width} empieza con pesos aleatorios", stacklevel=2)
    elif weights == "imagenet":
        state = _imagenet_resnet18_state()
    if state is not None:
        model.load_state_dict(state)
    pretrained_conv1 = model.conv1.weight.detach()
    model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    if width != 64:
        model.bn1 = nn.BatchNorm2d(width)
        for i, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            in_planes, stride = (planes // 2, 2) if i else (width, 1)
            setattr(model, f"layer{i + 1}", _stage(in_planes, planes, stride))
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(8 * width, NUM_CLASSES)
    if state is None:
        _torchvision_init(model)
    else:
        with torch.no_grad():  # central taps, rescaled to keep the response magnitude
            center = pretrained_conv1[:, :, 2:5, 2:5]
            model.conv1.weight.copy_(center * pretrained_conv1.abs().sum() / center.abs().sum())
    model.normalization = norm.CIFAR10
    model.xai_trained = False
    model.xai_init = "imagenet" if state is not None else "random"
    return subsample_strided_pointwise(model)


def _stage(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """Two torchvision BasicBlocks; the first downsamples (1x1 conv + BN) when shapes change."""
    from torchvision.models.resnet import BasicBlock

    down = None
    if stride != 1 or in_planes != planes:
        down = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                             nn.BatchNorm2d(planes))
    return nn.Sequential(BasicBlock(in_planes, planes, stride, down), BasicBlock(planes, planes))


def _torchvision_init(model: nn.Module) -> None:
    """torchvision's ResNet initialization: Kaiming-normal convolutions, BN scale 1 and shift 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _imagenet_resnet18_state() -> dict | None:
    from helpers.data import DataNotFoundError, fetch_weights

    try:
        path = fetch_weights("resnet18_imagenet")
    except DataNotFoundError as err:
        warnings.warn("no hay pesos de ImageNet disponibles: la ResNet-18 empieza con pesos "
                      f"aleatorios.\n{err}", stacklevel=3)
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


class _BasicBlockA(nn.Module):
    """He et al.'s CIFAR basic block with the parameter-free "option A" shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else None

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is None:
            return x
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """The CIFAR ResNet-(6n+2) of He et al. (2016): 16/32/64 channels, global average pool.

    The checkpoints expect ImageNet-normalized pixels; ``forward`` accepts CIFAR-normalized
    batches (like the ResNet-18) and converts them first, so both models share one input space.
    """

    def __init__(self, blocks_per_stage: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes = [16, 32, 64]
        for i, (prev, cur) in enumerate(zip([16, *planes], planes, strict=False), start=1):
            stride = 1 if i == 1 else 2
            layers = [_BasicBlockA(prev if j == 0 else cur, cur, stride if j == 0 else 1)
                      for j in range(blocks_per_stage)]
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.linear = nn.Linear(64, num_classes)
        self.normalization = norm.CIFAR10
        self.xai_trained = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = norm.IMAGENET.normalize(self.normalization.denormalize(x))
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet20_cifar(pretrained: bool = True) -> ResNetCifar:
    """ResNet-20 with the checkpoint of ``akamaster/pytorch_resnet_cifar10``.

    Its README reports 8.27% test error on CIFAR-10 (about 81% on the JPEG copy of the course).

    The checkpoint is found or fetched by :mod:`helpers.data` (raises a clear error if neither
    works). ``pretrained=False`` gives random weights, e.g. for a randomization sanity check.
    """
    model = ResNetCifar(blocks_per_stage=3)
    if pretrained:
        from helpers.data import fetch_weights

        ckpt = torch.load(fetch_weights("resnet20_cifar10"), map_location="cpu", weights_only=True)
        model.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()})
        model.xai_trained = True
    return model.eval()
