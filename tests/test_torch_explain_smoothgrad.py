"""SmoothGrad over the other explainers: noise scale, seeding, batching."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from toy_models import ConvGapLinear, PixelLinear, SmallConvNet, random_images

from helpers.torch import explain as te
from helpers.torch.normalization import CIFAR10


class NoiseRecorder(nn.Module):
    """Constant logits; keeps the inputs it sees. Lives in CIFAR-normalized space."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.normalization = CIFAR10
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.lin(x.mean(dim=(2, 3)))


def test_noise_is_gaussian_in_pixel_units():
    model, x = NoiseRecorder(), random_images(2, size=16)
    te.smoothgrad(te.saliency, model, x, n_samples=50, sigma=0.2, seed=0, batch_size=1000)
    clean, noisy = model.seen
    torch.testing.assert_close(clean, x)
    pixel_noise = CIFAR10.denormalize(noisy) - CIFAR10.denormalize(x.repeat_interleave(50, 0))
    assert pixel_noise.mean().abs() < 0.01
    torch.testing.assert_close(pixel_noise.std(dim=(0, 2, 3)), torch.full((3,), 0.2),
                               atol=0.01, rtol=0)


def test_sigma_zero_gives_the_method_itself():
    model, x = SmallConvNet("shared_inplace"), torch.randn(2, 3, 8, 8)
    for method, args in ((te.saliency, ()), (te.grad_cam, ("conv2",)),
                         (te.guided_backprop, ()), (te.integrated_gradients, ())):
        torch.testing.assert_close(te.smoothgrad(method, model, x, *args, n_samples=3, sigma=0),
                                   method(model, x, *args), rtol=1e-5, atol=1e-7)


def test_target_is_resolved_on_the_clean_image():
    model, x = SmallConvNet(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    torch.testing.assert_close(te.smoothgrad(te.saliency, model, x, sigma=2.0, seed=0),
                               te.smoothgrad(te.saliency, model, x, target=predicted,
                                             sigma=2.0, seed=0), rtol=0, atol=0)


def test_linear_model_saliency_is_unchanged_by_noise():
    w = torch.randn(3, 4, 4)
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(te.smoothgrad(te.saliency, PixelLinear(w), x, target=0, sigma=1.0),
                               te.saliency(PixelLinear(w), x, 0))


def test_seed_and_batch_size():
    torch.manual_seed(0)
    model, x = ConvGapLinear(), torch.randn(3, 3, 6, 6)

    def run(**kw):
        return te.smoothgrad(te.grad_cam, model, x, "conv", n_samples=5, **kw)

    ref = run(seed=1)
    torch.testing.assert_close(run(seed=1, batch_size=4), ref, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(run(seed=2), ref)
    assert ref.shape == (3, 6, 6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        te.smoothgrad(te.saliency, SmallConvNet(), torch.randn(1, 3, 8, 8), n_samples=0)
