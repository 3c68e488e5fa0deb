"""Saliency, Grad-CAM, guided backprop and Guided Grad-CAM: closed forms and Captum."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam, Saliency
from toy_models import (
    ConvGapLinear,
    PixelLinear,
    SmallConvNet,
    TwoUnitRelu,
    cifar_resnet18,
    random_images,
)

from helpers.torch import explain as te

pytestmark = [pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning"),
              pytest.mark.filterwarnings("ignore:Input Tensor 0 did not:UserWarning")]
TARGET = torch.tensor([3, 0, 8])
CLOSE = {"rtol": 1e-5, "atol": 1e-7}


@pytest.fixture(scope="module")
def resnet():
    return cifar_resnet18()


@pytest.fixture(scope="module")
def images():
    return random_images(3)


def plain_gradient(model, x, target):
    x = x.clone().requires_grad_()
    model(x)[torch.arange(len(x)), target].sum().backward()
    return x.grad


def test_saliency_of_a_linear_model_is_the_largest_weight_magnitude():
    w = torch.tensor([[[1.0, -3.0], [0.0, 2.0]], [[-2.0, 1.0], [0.5, -4.0]]])
    x = torch.randn(2, 2, 2, 2)
    expected = torch.tensor([[2.0, 3.0], [0.5, 4.0]])
    torch.testing.assert_close(te.saliency(PixelLinear(w), x, 0), expected.expand(2, 2, 2))
    torch.testing.assert_close(te.saliency(PixelLinear(w), x, 1), torch.zeros(2, 2, 2))


def test_saliency_matches_captum(resnet, images):
    ours = te.saliency(resnet, images, TARGET)
    theirs = Saliency(resnet).attribute(images, target=TARGET, abs=True).amax(dim=1)
    assert ours.shape == (3, 32, 32) and ours.amax() > 0
    torch.testing.assert_close(ours, theirs, **CLOSE)


@pytest.mark.parametrize("stride", [1, 2])
def test_grad_cam_closed_form(stride):
    torch.manual_seed(0)
    model = ConvGapLinear(stride=stride)
    x = torch.randn(2, 3, 6, 6)
    target = torch.tensor([2, 0])
    acts = model.conv(x).detach()
    w = model.fc.weight.detach()[target]  # [N, K]
    hand = F.relu(torch.einsum("nk,nkhw->nhw", w, acts)) / acts[0, 0].numel()
    expected = F.interpolate(hand[:, None], size=(6, 6), mode="bilinear")[:, 0]
    ours = te.grad_cam(model, x, "conv", target)
    assert (hand > 0).any() and (hand == 0).any()  # the ReLU matters in this case
    torch.testing.assert_close(ours, expected)
    if stride == 1:  # same size: no interpolation at all
        torch.testing.assert_close(ours, hand)


@pytest.mark.parametrize("layer", ["layer4", "layer3.1", "layer4.1.bn2"])
def test_grad_cam_matches_captum_bilinear(resnet, images, layer):
    module = dict(resnet.named_modules())[layer]
    ours = te.grad_cam(resnet, images, layer, TARGET)
    cam = LayerGradCam(resnet, module).attribute(images, target=TARGET, relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (32, 32), interpolate_mode="bilinear")[:, 0]
    assert ours.amax() > 0
    torch.testing.assert_close(ours, theirs, **CLOSE)


def test_guided_backprop_by_hand():
    x = torch.tensor([2.0, 1.0]).view(1, 1, 1, 2)
    model = TwoUnitRelu()
    plain = plain_gradient(model, x, torch.tensor([0]))
    torch.testing.assert_close(plain.flatten(), torch.tensor([-1.0, -5.0]))
    torch.testing.assert_close(te.guided_backprop(model, x).flatten(), torch.tensor([2.0, -2.0]))


def test_guided_backprop_without_relu_is_the_gradient():
    model, x = SmallConvNet("none"), torch.randn(2, 3, 8, 8)
    target = torch.tensor([1, 3])
    torch.testing.assert_close(te.guided_backprop(model, x, target),
                               plain_gradient(model, x, target), **CLOSE)


def test_guided_backprop_same_for_every_way_of_writing_relu():
    x, target = torch.randn(2, 3, 8, 8), torch.tensor([1, 3])
    ref = te.guided_backprop(SmallConvNet("module"), x, target)
    assert not torch.allclose(ref, plain_gradient(SmallConvNet("module"), x, target))
    for how in ("shared_inplace", "functional", "method", "torch"):
        torch.testing.assert_close(te.guided_backprop(SmallConvNet(how), x, target), ref,
                                   rtol=0, atol=0, msg=how)
    # Captum hooks nn.ReLU modules only: right for modules, the plain gradient for F.relu.
    theirs = GuidedBackprop(SmallConvNet("module")).attribute(x, target=target)
    torch.testing.assert_close(theirs, ref, **CLOSE)
    functional = SmallConvNet("functional")
    torch.testing.assert_close(GuidedBackprop(functional).attribute(x, target=target),
                               plain_gradient(functional, x, target), **CLOSE)


def test_guided_backprop_matches_captum_on_torchvision_resnet(resnet, images):
    ours = te.guided_backprop(resnet, images, TARGET)
    assert not torch.allclose(ours, plain_gradient(resnet, images, TARGET), atol=1e-4)
    torch.testing.assert_close(ours, GuidedBackprop(resnet).attribute(images, target=TARGET),
                               **CLOSE)


def test_guided_grad_cam_is_the_product_and_matches_captum(resnet, images):
    ours = te.guided_grad_cam(resnet, images, "layer4", TARGET)
    product = (te.guided_backprop(resnet, images, TARGET)
               * te.grad_cam(resnet, images, "layer4", TARGET)[:, None])
    torch.testing.assert_close(ours, product, **CLOSE)
    captum = GuidedGradCam(resnet, resnet.layer4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bilinear = captum.attribute(images, target=TARGET, interpolate_mode="bilinear")
        nearest = captum.attribute(images, target=TARGET)  # Captum's default upsampling
    torch.testing.assert_close(ours, bilinear, **CLOSE)
    assert not torch.allclose(ours, nearest, atol=1e-4)  # documented difference


def test_guided_grad_cam_target_none_uses_one_prediction(resnet, images):
    with torch.no_grad():
        predicted = resnet(images).argmax(dim=1)
    torch.testing.assert_close(te.guided_grad_cam(resnet, images, "layer4"),
                               te.guided_grad_cam(resnet, images, "layer4", predicted),
                               rtol=0, atol=0)
