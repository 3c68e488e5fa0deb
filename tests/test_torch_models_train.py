"""The CIFAR models and the training/evaluation helpers."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from helpers.data import resolve
from helpers.data.cifar10 import Cifar10, CifarImages
from helpers.profile import FAST
from helpers.torch import normalization as norm
from helpers.torch import train as torch_train
from helpers.torch.models import ResNetCifar, resnet18_cifar, resnet20_cifar


@pytest.fixture
def empty_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(resolve, "reachable", lambda url, timeout=None: False)
    return tmp_path / "data"


def test_resnet18_cifar_architecture():
    model = resnet18_cifar(weights=None).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity) and model.fc.out_features == 10
    feats = {}
    model.layer4.register_forward_hook(lambda m, i, o: feats.update(layer4=o.shape))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert feats["layer4"][-2:] == (4, 4)  # 1x1 in the unmodified ResNet-18
    assert model.normalization == norm.CIFAR10 and model.xai_trained is False


def test_missing_imagenet_weights_warn_and_fall_back_to_random(empty_data):
    with pytest.warns(UserWarning, match="random init"):
        model = resnet18_cifar(weights="imagenet")
    assert model.xai_init == "random"


def test_local_imagenet_weights_are_loaded(empty_data):
    reference = resnet18(weights=None)
    path = empty_data / "weights" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = resnet18_cifar(weights="imagenet")
    assert model.xai_init == "imagenet"
    torch.testing.assert_close(model.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    center = reference.conv1.weight[:, :, 2:5, 2:5]
    ratio = model.conv1.weight / center
    assert torch.allclose(ratio, ratio.flatten()[0])  # central taps, one common scale


def test_unknown_weights_value_is_rejected():
    with pytest.raises(ValueError, match="imagenet"):
        resnet18_cifar(weights="cifar")


def test_resnet20_takes_cifar_normalized_input():
    model = ResNetCifar(3).eval()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(0.27e6, rel=0.02)
    pixels = torch.rand(2, 3, 32, 32)
    out = model(norm.CIFAR10.normalize(pixels))
    # the same computation fed ImageNet-normalized pixels directly
    model.normalization = norm.IMAGENET
    torch.testing.assert_close(out, model(norm.IMAGENET.normalize(pixels)))


REAL = Path(os.environ.get("XAI_DATA_DIR", "data"))


@pytest.mark.skipif(not (REAL / "weights" / "resnet20-12fca82f.th").exists()
                    or not (REAL / "cifar10" / "cifar10_subset.npz").exists(),
                    reason="real checkpoint or data not in $XAI_DATA_DIR")
def test_resnet20_checkpoint_is_accurate_on_real_images():
    from helpers.data import load_cifar10

    model = resnet20_cifar()
    test = load_cifar10(n_train=10, n_test=500).test
    acc = torch_train.accuracy(*torch_train.predict(model, test, torch.device("cpu")))
    assert acc > 0.7 and model.xai_trained  # 81% on the full JPEG test set


def test_random_crop_flip_returns_windows_of_the_padded_batch():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    pad = torch.tensor([-1.0])
    gen = torch.Generator().manual_seed(0)
    out = torch_train.random_crop_flip(x, pad, padding=2, generator=gen)
    padded = nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    for n in range(2):
        windows = [padded[n, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        windows += [w.flip(2) for w in windows]
        assert any(torch.equal(out[n], w) for w in windows)
    assert torch.equal(torch_train.random_crop_flip(x, pad, padding=0).abs().sum(), x.sum())


def test_accuracy_of_argmax_predictions():
    probs = np.eye(3)[[0, 1, 1, 2, 0]]
    assert torch_train.accuracy(probs, np.array([0, 1, 2, 2, 1])) == pytest.approx(0.6)


def _toy_data(n: int = 60, seed: int = 0) -> CifarImages:
    """Class = brightness level: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = (labels[:, None, None, None] * 150 + rng.integers(0, 80, (n, 32, 32, 3)))
    return CifarImages(images.astype(np.uint8), labels)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)
        self.normalization = norm.CIFAR10

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))


def test_train_keeps_the_best_epoch_and_ends_in_eval_mode():
    model = _Tiny()
    config = torch_train.TrainConfig(epochs=3, batch_size=16, max_lr=0.5)
    result = torch_train.train(model, _toy_data(), _toy_data(20, seed=1), config,
                               torch.device("cpu"))
    assert result.epochs_run == 3 and len(result.history["loss"]) == 3
    best = max(result.history["val_accuracy"])
    assert result.val_accuracy == best and best > 0.9
    assert result.best_epoch == result.history["val_accuracy"].index(best) + 1
    device = torch.device("cpu")
    assert torch_train.accuracy(*torch_train.predict(model, _toy_data(20, seed=1), device)) == best
    assert not model.training and model.xai_trained


def test_train_restores_the_weights_of_the_best_epoch(monkeypatch):
    model, states = _Tiny(), []
    scores = iter([0.5, 0.9, 0.7])

    def fake_predict(m, dataset, device):
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return None, None

    monkeypatch.setattr(torch_train, "predict", fake_predict)
    monkeypatch.setattr(torch_train, "accuracy", lambda probs, labels: next(scores))
    config = torch_train.TrainConfig(epochs=3, batch_size=16, max_lr=0.5)
    result = torch_train.train(model, _toy_data(), _toy_data(8), config, torch.device("cpu"))
    assert result.best_epoch == 2 and result.val_accuracy == 0.9
    for key, value in model.state_dict().items():
        assert torch.equal(value, states[1][key]), key
    assert not torch.equal(states[1]["fc.weight"], states[2]["fc.weight"])


def test_predict_restores_train_mode():
    model = _Tiny().train()
    torch_train.predict(model, _toy_data(8), torch.device("cpu"))
    assert model.training


@pytest.mark.filterwarnings("ignore:ImageNet weights unavailable")
def test_load_or_train_caches_and_reuses(empty_data, monkeypatch):
    profile = dataclasses.replace(FAST, cifar_epochs=1, cifar_batch_size=20)
    data = Cifar10(_toy_data(40), _toy_data(20, seed=1), tuple("abcdefghij"), "toy", "")
    with pytest.warns(UserWarning, match="random init"):
        model, meta = torch_train.load_or_train(profile, torch.device("cpu"), data=data)
    assert torch_train.checkpoint_path("resnet18_cifar_fast").exists()
    assert meta["config"]["init"] == "random" and 0 <= meta["test_accuracy"] <= 1

    def no_training(*args, **kwargs):
        raise AssertionError("a matching checkpoint must be reused")

    monkeypatch.setattr(torch_train, "train", no_training)
    again, meta2 = torch_train.load_or_train(profile, torch.device("cpu"), data=data)
    assert meta2["test_accuracy"] == meta["test_accuracy"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(AssertionError, match="reused"):  # another config retrains
        torch_train.load_or_train(dataclasses.replace(profile, cifar_epochs=2),
                                  torch.device("cpu"), data=data)

