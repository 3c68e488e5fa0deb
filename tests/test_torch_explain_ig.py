"""Integrated Gradients: hand-computed values, completeness, baselines and Captum."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients
from toy_models import BasicModel2, PixelLinear, cifar_resnet18, random_images

from helpers.torch import explain as te
from helpers.torch.explain import gaussian_blur, make_reference
from helpers.torch.explain.base import pick
from helpers.torch.normalization import CIFAR10


def pair(a: float, b: float) -> torch.Tensor:
    return torch.tensor([a, b]).view(1, 1, 1, 2)


@pytest.mark.parametrize("method", ["gausslegendre", "trapezoid"])
def test_basic_model2_by_hand(method):
    # Path (3a, a): f = ReLU(2a - 1) switches on at a = 1/2 with gradient (1, -1), so
    # IG = (3 * 1/2, 1 * -1/2). Even step counts put no node on the kink.
    attr, gap = te.integrated_gradients(BasicModel2(), pair(3.0, 1.0), 0, steps=50,
                                        method=method, return_gap=True)
    torch.testing.assert_close(attr.flatten(), torch.tensor([1.5, -0.5]))
    torch.testing.assert_close(gap, torch.zeros(1), atol=1e-5, rtol=0)


def test_basic_model2_nonzero_baseline_by_hand():
    # Path (1 + 2a, a): f = ReLU(a), gradient (1, -1) all along: IG = (2, -1), f(x) - f(x') = 1.
    attr, gap = te.integrated_gradients(BasicModel2(), pair(3.0, 1.0), 0,
                                        baseline=pair(1.0, 0.0), steps=8, return_gap=True)
    torch.testing.assert_close(attr.flatten(), torch.tensor([2.0, -1.0]))
    torch.testing.assert_close(gap, torch.zeros(1), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def resnet():
    return cifar_resnet18()


def test_completeness_on_resnet(resnet):
    x, target = random_images(3, size=16), torch.tensor([1, 4, 9])
    attr, gap = te.integrated_gradients(resnet, x, target, return_gap=True)
    with torch.no_grad():
        delta = pick(resnet(x), target) - pick(resnet(CIFAR10.constant(x, 0.0)), target)
    torch.testing.assert_close(attr.sum(dim=(1, 2, 3)) - delta, gap, rtol=1e-4, atol=1e-5)
    assert (delta.abs() > 0.1).all()  # a non-trivial check
    assert (gap.abs() < 0.1 * delta.abs()).all(), (gap, delta)


def test_matches_captum_gauss_legendre(resnet):
    x, target = random_images(2, size=16), torch.tensor([1, 4])
    ours = te.integrated_gradients(resnet, x, target, steps=50)
    theirs = IntegratedGradients(resnet).attribute(
        x, baselines=CIFAR10.constant(x, 0.0), target=target, n_steps=50, method="gausslegendre")
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_captum_riemann_trapezoid_weights_sum_to_steps_minus_one_over_steps(resnet):
    # Same nodes, but Captum's weights are 1/steps (halved at the ends): they sum to
    # (steps - 1) / steps. Ours sum to 1.
    x, target, steps = random_images(2, size=16), torch.tensor([1, 4]), 10
    ours = te.integrated_gradients(resnet, x, target, steps=steps, method="trapezoid")
    theirs = IntegratedGradients(resnet).attribute(
        x, baselines=CIFAR10.constant(x, 0.0), target=target, n_steps=steps,
        method="riemann_trapezoid")
    torch.testing.assert_close(theirs, ours * (steps - 1) / steps, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle"])
def test_matches_captum_riemann_sums(resnet, method):
    x, target = random_images(2, size=16), torch.tensor([1, 4])
    ours = te.integrated_gradients(resnet, x, target, steps=7, method=method)
    theirs = IntegratedGradients(resnet).attribute(
        x, baselines=CIFAR10.constant(x, 0.0), target=target, n_steps=7, method=method)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_chunking_does_not_change_the_result(resnet):
    x = random_images(2, size=16)
    ref = te.integrated_gradients(resnet, x, 3, steps=6, batch_size=1000)
    for batch_size in (1, 5):
        torch.testing.assert_close(te.integrated_gradients(resnet, x, 3, steps=6,
                                                           batch_size=batch_size),
                                   ref, rtol=1e-4, atol=1e-6)


@pytest.fixture()
def linear():
    """A linear model (IG is exact: w * (x - x')) that lives in CIFAR-normalized space."""
    model = PixelLinear(torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0)))
    model.normalization = CIFAR10
    return model


def test_black_baseline_is_normalization_aware(linear):
    x = random_images(2, size=8)
    black = CIFAR10.constant(x, 0.0)
    assert (black.abs() > 1).all()  # not the zero tensor: 0 is the mean colour here
    expected = linear.w.detach() * (x - black)
    for baseline in (None, "black", black):
        torch.testing.assert_close(te.integrated_gradients(linear, x, 0, baseline=baseline,
                                                           steps=4), expected)


def test_other_baselines(linear):
    x = random_images(2, size=8)
    w = linear.w.detach()

    def ig(baseline, **kw):
        return te.integrated_gradients(linear, x, 0, baseline=baseline, steps=4, **kw)

    mean = x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(ig("mean"), w * (x - mean))
    blurred = gaussian_blur(x, sigma=1.0)  # sigma = max(H, W) / 8 = 1 pixel at 8x8
    torch.testing.assert_close(ig("blur"), w * (x - blurred))
    assert blurred.std(dim=(2, 3)).lt(x.std(dim=(2, 3))).all()
    flat = torch.full((1, 3, 8, 8), 0.7)
    torch.testing.assert_close(gaussian_blur(flat, 1.0), flat)  # constant stays constant
    noise = make_reference("noise", x, CIFAR10, seed=3)
    torch.testing.assert_close(ig("noise", seed=3), w * (x - noise))
    pixels = CIFAR10.denormalize(noise)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and pixels.std() > 0.2
    assert torch.equal(noise, make_reference("noise", x, CIFAR10, seed=3))
    assert not torch.allclose(noise, make_reference("noise", x, CIFAR10, seed=4))
    with pytest.raises(ValueError, match="baseline must be"):
        ig("white")
    with pytest.raises(ValueError, match="broadcast"):
        ig(torch.zeros(5, 3, 8, 8))
