"""Contracts shared by every explainer: batching, cleanup, validation, warnings."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.modules import module as module_globals
from toy_models import SmallConvNet, cifar_resnet18, random_images

from helpers.torch import explain as te
from helpers.torch.models import resnet18_cifar

METHODS = ["saliency", "grad_cam", "guided_backprop", "guided_grad_cam", "occlusion",
           "integrated_gradients", "smoothgrad"]


def explain(name: str, model: nn.Module, x: torch.Tensor, layer: str, **kw) -> torch.Tensor:
    """Every method with cheap settings."""
    if name in ("grad_cam", "guided_grad_cam"):
        return getattr(te, name)(model, x, layer, **kw)
    if name == "occlusion":
        return te.occlusion(model, x, patch=4, stride=4, **kw)
    if name == "integrated_gradients":
        return te.integrated_gradients(model, x, steps=6, batch_size=5, **kw)
    if name == "smoothgrad":
        return te.smoothgrad(te.guided_backprop, model, x, n_samples=3, seed=1, **kw)
    return getattr(te, name)(model, x, **kw)


def hook_counts(model: nn.Module) -> int:
    total = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                + len(m._backward_pre_hooks) for m in model.modules())
    return total + len(module_globals._global_forward_hooks) + len(
        module_globals._global_backward_hooks)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return cifar_resnet18()


@pytest.mark.parametrize("name", METHODS)
def test_batched_equals_one_by_one(resnet, name):
    x = random_images(3, size=16)
    target = torch.tensor([2, 7, 7])
    batched = explain(name, resnet, x, "layer4", target=target)
    if name == "smoothgrad":  # the noise is drawn for the whole batch: image 0 gets the same
        single = explain(name, resnet, x[:1], "layer4", target=target[:1])
        torch.testing.assert_close(batched[:1], single, rtol=1e-4, atol=1e-6)
        return
    singles = torch.cat([explain(name, resnet, x[i:i + 1], "layer4", target=target[i:i + 1])
                         for i in range(3)])
    assert batched.abs().amax() > 0 and hook_counts(resnet) == 0
    assert batched.dtype == torch.float32 and batched.device.type == "cpu"
    assert batched.shape[0] == 3 and batched.shape[-2:] == (16, 16)
    torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_model_state_hooks_and_x_untouched(name):
    model = SmallConvNet("shared_inplace").train()
    model.conv2.eval()  # a mixed state must come back exactly
    model.conv1.bias.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    x_before = x.detach().clone()
    first = explain(name, model, x, "conv2", target=1)
    second = explain(name, model, x, "conv2", target=1)
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # no accumulation across calls
    assert x.grad is None and torch.equal(x.detach(), x_before)
    assert model.training and model.conv1.training and not model.conv2.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert hook_counts(model) == 0 and torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("name", METHODS)
def test_cleanup_after_exception_inside_forward(name):
    model = SmallConvNet("module").train()
    model.fc.weight.requires_grad_(False)
    model.fail = True
    with pytest.raises(RuntimeError, match="on purpose"):
        explain(name, model, torch.randn(2, 3, 8, 8), "conv2", target=0)
    assert hook_counts(model) == 0 and torch._C._len_torch_function_stack() == 0
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, False, True]


def test_batchnorm_statistics_not_updated_in_train_mode(resnet):
    model = cifar_resnet18().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    te.saliency(model, random_images(2, size=16))
    te.occlusion(model, random_images(2, size=16), patch=8, stride=8)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_target_none_is_the_predicted_class_and_forms_agree(resnet):
    x = random_images(3, size=16)
    with torch.no_grad():
        predicted = resnet(x).argmax(dim=1)
    ref = te.saliency(resnet, x, predicted)
    torch.testing.assert_close(te.saliency(resnet, x), ref, rtol=0, atol=0)
    torch.testing.assert_close(te.saliency(resnet, x, predicted.tolist()), ref, rtol=0, atol=0)
    same = te.saliency(resnet, x, 4)
    torch.testing.assert_close(te.saliency(resnet, x, [4, 4, 4]), same, rtol=0, atol=0)
    assert not torch.allclose(same, te.saliency(resnet, x, 5))


@pytest.mark.parametrize(("x", "match"), [
    (torch.randn(3, 8, 8), "4-D"),
    (torch.randn(1, 1, 3, 8, 8), "4-D"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.long), "floating"),
    ([[1.0]], "torch.Tensor"),
])
def test_bad_inputs(x, match):
    with pytest.raises(ValueError, match=match):
        te.saliency(SmallConvNet(), x)


@pytest.mark.parametrize(("target", "match"), [
    (4, "out of range.*4 outputs"),
    (-1, "out of range"),
    ([0, 1, 2], "one class per image"),
    (torch.tensor([[0, 1]]), "one class per image"),
    ([0.5, 1.0], "integers"),
    ("cat", "target must be"),
    (True, "bool"),
])
def test_bad_targets(target, match):
    model = SmallConvNet()
    for name in ("saliency", "grad_cam", "occlusion", "integrated_gradients"):
        with pytest.raises(ValueError, match=match):
            explain(name, model, torch.randn(2, 3, 8, 8), "conv2", target=target)


def test_unknown_layer_lists_valid_names(resnet):
    with pytest.raises(ValueError, match="unknown layer 'layer5'") as info:
        te.grad_cam(resnet, random_images(1, size=16), "layer5")
    message = str(info.value)
    for name in ("conv1", "layer1", "layer4", "layer4.1", "fc", "Did you mean"):
        assert name in message
    assert "deeper ones such as" in message and len(message) < 600


def test_layer_checks(resnet):
    x = random_images(1, size=16)
    with pytest.raises(ValueError, match="not a submodule"):
        te.grad_cam(resnet, x, nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="ran 2 times"):  # the ReLU module reused in a block
        te.grad_cam(resnet, x, "layer4.1.relu")
    with pytest.raises(ValueError, match=r"\[N,K,h,w\]"):
        te.grad_cam(resnet, x, "fc")
    assert hook_counts(resnet) == 0
    torch.testing.assert_close(te.grad_cam(resnet, x, resnet.layer3),
                               te.grad_cam(resnet, x, "layer3"), rtol=0, atol=0)


def test_untrained_model_warns_once_per_call():
    model = resnet18_cifar(weights=None)
    assert model.xai_trained is False
    x = random_images(1, size=16)
    for call in (lambda: te.guided_grad_cam(model, x, "layer4"),
                 lambda: te.smoothgrad(te.grad_cam, model, x, "layer4", n_samples=2)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert len(messages) == 1 and "no está entrenado" in messages[0]
    model.xai_trained = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        te.saliency(model, x)


def test_float64_model_gives_float32_cpu_maps():
    x = torch.randn(2, 3, 8, 8)
    ref = te.guided_backprop(SmallConvNet(), x)
    out = te.guided_backprop(SmallConvNet().double(), x)  # x follows the model's dtype
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-6)
