"""Occlusion: window placement, hand-computed maps, fills and Captum."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion
from torch import nn
from toy_models import PixelLinear, cifar_resnet18, ln3_pixels, random_images

from helpers.torch import explain as te
from helpers.torch.explain import window_starts
from helpers.torch.normalization import CIFAR10, IMAGENET


@pytest.mark.parametrize(("size", "patch", "stride", "starts"), [
    (32, 4, 2, list(range(0, 29, 2))),  # Captum places the same 15 windows
    (4, 3, 2, [0, 1]),  # extra window flush with the border (Captum: 0 and a cropped 2)
    (5, 2, 2, [0, 2, 3]),
    (3, 3, 1, [0]),
    (4, 1, 1, [0, 1, 2, 3]),
    (1, 1, 2, [0]),  # the window spans the axis: any stride
])
def test_window_starts(size, patch, stride, starts):
    assert window_starts(size, patch, stride) == starts


@pytest.mark.parametrize(("size", "patch", "stride"), [(4, 5, 1), (8, 2, 3), (8, 0, 1), (8, 8, 0)])
def test_bad_windows(size, patch, stride):
    with pytest.raises(ValueError, match="stride <= patch <= size"):
        window_starts(size, patch, stride)


def test_single_pixel_windows_by_hand():
    # logit gap s = ln3 (x0 + x1 - x3): p0(x = ones) = sigmoid(ln 3) = 3/4.
    model = ln3_pixels(1, 1, 0, -1, shape=(1, 2, 2))
    heat = te.occlusion(model, torch.ones(1, 1, 2, 2), 0, patch=1, stride=1, fill=0.0)
    # drop x0 or x1: s = 0, p = 1/2; drop x2: no change; drop x3: s = 2 ln3, p = 9/10.
    torch.testing.assert_close(heat, torch.tensor([[[0.25, 0.25], [0.0, -0.15]]]))


def test_overlapping_windows_are_averaged_by_hand():
    model = ln3_pixels(1, 1, -1, shape=(1, 1, 3))  # p0(ones) = 3/4
    heat = te.occlusion(model, torch.ones(1, 1, 1, 3), 0, patch=(1, 2), stride=1, fill=0.0)
    # window {0,1}: p = 1/4, drop 0.5; window {1,2}: p = 3/4, drop 0; pixel 1 is in both.
    torch.testing.assert_close(heat, torch.tensor([[[0.5, 0.25, 0.0]]]))


def test_border_window_by_hand():
    model = ln3_pixels(1, 0, 0, -1, shape=(1, 1, 4))  # p0(ones) = 1/2
    heat = te.occlusion(model, torch.ones(1, 1, 1, 4), 0, patch=(1, 3), stride=2, fill=0.0)
    # windows {0,1,2}: p = 1/4 (+0.25) and {1,2,3}: p = 3/4 (-0.25).
    torch.testing.assert_close(heat, torch.tensor([[[0.25, 0.0, 0.0, -0.25]]]))


class Recorder(nn.Module):
    """PixelLinear that keeps every batch it sees; ``normalization`` as a CIFAR model."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = PixelLinear(torch.ones(3, 4, 4))
        self.normalization = CIFAR10
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.inner(x)


def occluded_batch(fill, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The image, and what one whole-image window replaced it by."""
    model, x = Recorder(), random_images(2, size=4)
    te.occlusion(model, x, patch=4, stride=4, fill=fill, **kwargs)
    assert len(model.seen) == 2
    return x, model.seen[1]


def test_default_fill_is_mid_gray_in_the_models_input_space():
    x, seen = occluded_batch(None)
    torch.testing.assert_close(seen, CIFAR10.constant(x, 0.5))
    torch.testing.assert_close(CIFAR10.denormalize(seen), torch.full_like(x, 0.5))
    x, seen = occluded_batch(None, normalization=IMAGENET)  # explicit beats model attribute
    torch.testing.assert_close(seen, IMAGENET.constant(x, 0.5))


def test_other_fills():
    x, seen = occluded_batch(0.0)
    torch.testing.assert_close(CIFAR10.denormalize(seen), torch.zeros_like(x), atol=1e-6,
                               rtol=0)
    x, seen = occluded_batch("mean")
    torch.testing.assert_close(seen, x.mean(dim=(2, 3), keepdim=True).expand_as(x))
    fill = torch.randn(1, 3, 1, 1)
    x, seen = occluded_batch(fill)
    torch.testing.assert_close(seen, fill.expand_as(x))
    for bad in ("gray", 1.5, torch.zeros(2, 2)):
        with pytest.raises(ValueError, match="fill"):
            occluded_batch(bad)


@pytest.fixture(scope="module")
def resnet():
    return cifar_resnet18()


@pytest.mark.parametrize("fill", [None, "mean"])
def test_matches_captum_with_softmax_forward(resnet, fill):
    x, target = random_images(2, size=16), torch.tensor([3, 6])
    baselines = (CIFAR10.constant(x, 0.5) if fill is None
                 else x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous())
    ours = te.occlusion(resnet, x, target, patch=4, stride=2, fill=fill)
    theirs = Occlusion(lambda inp: resnet(inp).softmax(dim=1)).attribute(
        x, target=target, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2),
        baselines=baselines, perturbations_per_eval=16)
    assert ours.shape == (2, 16, 16) and ours.abs().amax() > 1e-4
    torch.testing.assert_close(theirs, theirs[:, :1].expand_as(theirs))  # same on all channels
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-4, atol=1e-6)


def test_logit_score_matches_captum_on_the_plain_forward(resnet):
    x, target = random_images(2, size=16), torch.tensor([3, 6])
    ours = te.occlusion(resnet, x, target, patch=4, stride=2, score="logit")
    theirs = Occlusion(resnet).attribute(
        x, target=target, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2),
        baselines=CIFAR10.constant(x, 0.5), perturbations_per_eval=16)
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ours, te.occlusion(resnet, x, target, patch=4, stride=2))
    with pytest.raises(ValueError, match="score must be one of"):
        te.occlusion(resnet, x, target, patch=4, stride=2, score="softmax")


def test_chunk_size_does_not_change_the_map(resnet):
    x = random_images(2, size=16)
    ref = te.occlusion(resnet, x, patch=8, stride=4)
    for batch_size in (1, 7, 1000):
        torch.testing.assert_close(te.occlusion(resnet, x, patch=8, stride=4,
                                                batch_size=batch_size), ref,
                                   rtol=1e-4, atol=1e-6)
