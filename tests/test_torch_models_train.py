"""The CIFAR models and the training/evaluation helpers."""

import dataclasses
import json
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
    (tmp_path / "data").mkdir()
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
    with pytest.warns(UserWarning, match="pesos aleatorios"):
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


def test_an_epoch_that_stalls_is_announced_while_it_runs():
    import time

    from helpers.core.training import EpochWatch

    class Stalls(_Tiny):  # the first batch of epoch 2 hangs for a while
        calls = 0

        def forward(self, x):
            if self.training:
                self.calls += 1
                if self.calls == 5:
                    time.sleep(0.6)
            return super().forward(x)

    said = []
    watch = EpochWatch(0.05, "la red", said.append, factor=2, min_seconds=0.2)
    config = torch_train.TrainConfig(epochs=3, batch_size=16)
    torch_train.train(Stalls(), _toy_data(), _toy_data(8), config, torch.device("cpu"),
                      watch=watch)
    assert len(said) == 1 and "la época 2/3 de la red lleva más de" in said[0]


def test_training_computes_in_the_mixed_precision_dtype_and_predict_in_float32():
    model, seen = _Tiny(), []
    model.conv.register_forward_hook(lambda m, i, out: seen.append((m.training, out.dtype)))
    config = torch_train.TrainConfig(epochs=1, batch_size=30)
    device = torch.device("cpu")
    torch_train.train(model, _toy_data(), _toy_data(8), config, device)
    expected = torch_train._mixed_dtype(device) or torch.float32
    assert {dtype for training, dtype in seen if training} == {expected}
    assert {dtype for training, dtype in seen if not training} == {torch.float32}
    assert torch_train.precision_name(device) == str(expected).removeprefix("torch.")
    assert model.conv.weight.dtype == torch.float32


def test_mixed_precision_is_float16_on_cuda_and_off_on_a_cpu_without_bfloat16(monkeypatch):
    assert torch_train.mixed_precision(torch.device("cuda")).fast_dtype == torch.float16
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert torch_train.precision_name(torch.device("cpu")) == "float32"
    model = _Tiny()
    with torch_train.mixed_precision(torch.device("cpu")):
        assert model(torch.zeros(1, 3, 8, 8)).dtype == torch.float32


def test_predict_restores_train_mode():
    model = _Tiny().train()
    torch_train.predict(model, _toy_data(8), torch.device("cpu"))
    assert model.training


def test_resnet18_width_scales_channels_and_keeps_the_layer_names():
    narrow = resnet18_cifar(16, weights=None)
    standard = resnet18_cifar(64, weights=None)
    assert [n for n, _ in narrow.named_modules()] == [n for n, _ in standard.named_modules()]
    assert narrow.conv1.out_channels == 16 and narrow.layer4[1].conv2.out_channels == 128
    assert narrow.fc.in_features == 128 and standard.fc.in_features == 512
    params = [sum(p.numel() for p in m.parameters()) for m in (narrow, standard)]
    assert 14 < params[1] / params[0] < 17  # parameters grow with the square of the width
    feats = {}
    narrow.layer4.register_forward_hook(lambda m, i, o: feats.update(layer4=o.shape))
    assert narrow.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert tuple(feats["layer4"]) == (2, 128, 4, 4)
    assert narrow.layer2[0].downsample is not None and narrow.layer1[0].downsample is None
    with pytest.warns(UserWarning, match="solo existen para el ancho 64"):
        assert resnet18_cifar(16, weights="imagenet").xai_init == "random"
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="width"):
            resnet18_cifar(bad, weights=None)


def test_config_follows_the_profile():
    config = torch_train.config_for(FAST)
    assert (config.width, config.epochs, config.batch_size) == (
        FAST.cifar_width, FAST.cifar_epochs, FAST.cifar_batch_size)
    assert config.max_lr == pytest.approx(0.2 * FAST.cifar_batch_size / 128)


TOY = dataclasses.replace(FAST, cifar_epochs=1, cifar_batch_size=20, cifar_width=4)


def without_estimates(said):
    return [line for line in said if not line.startswith("Entrenamiento de")]


def toy_cifar():
    return Cifar10(_toy_data(40), _toy_data(20, seed=1), tuple("abcdefghij"), "toy", "")


def test_load_or_train_caches_and_reuses(empty_data, monkeypatch):
    data = toy_cifar()
    said = []
    model, meta = torch_train.load_or_train(TOY, torch.device("cpu"), data=data, say=said.append)
    path = Path(meta["checkpoint"])
    assert path.name == "resnet18_cifar_fast.pt" and path.exists()
    assert meta["init"] == "random" and meta["key"]["width"] == 4
    assert 0 <= meta["test_accuracy"] <= 1
    assert (meta["n_train"], meta["n_val"], meta["n_test"]) == (38, 2, 20)

    def no_training(*args, **kwargs):
        raise AssertionError("a matching checkpoint must be reused")

    monkeypatch.setattr(torch_train, "train", no_training)
    again, meta2 = torch_train.load_or_train(TOY, torch.device("cpu"), say=said.append)
    assert meta2["test_accuracy"] == meta["test_accuracy"] and meta2["source"] == "caché"
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert again.xai_trained and not again.training
    with pytest.raises(AssertionError, match="reused"):  # another config retrains
        torch_train.load_or_train(dataclasses.replace(TOY, cifar_epochs=2),
                                  torch.device("cpu"), data=data, say=said.append)
    assert "difiere en: epochs" in said[-2]  # the last line: the training time estimate


def test_the_shortcut_model_trains_on_planted_images_and_has_its_own_checkpoint(empty_data,
                                                                                   monkeypatch):
    from helpers.core.shortcut import Shortcut

    spec = Shortcut(target=1, p_target=1.0, p_other=0.0, size=3)
    seen = {}

    def spy(model, train_set, val_set, config, device, *resume):
        seen["images"], seen["labels"], seen["epochs"] = (train_set.images, train_set.labels,
                                                          config.epochs)
        return real_train(model, train_set, val_set, config, device, *resume)

    real_train = torch_train.train
    monkeypatch.setattr(torch_train, "train", spy)
    toy = dataclasses.replace(TOY, shortcut_epochs=2)
    _, meta = torch_train.load_or_train(toy, torch.device("cpu"), data=toy_cifar(),
                                        say=lambda s: None, shortcut=spec)
    assert Path(meta["checkpoint"]).name == "resnet18_cifar_atajo_fast.pt"
    assert meta["key"]["shortcut"]["target"] == 1 and seen["epochs"] == 2
    magenta = (seen["images"] == np.array(spec.color, np.uint8)).all(-1)  # [N, H, W]
    assert (magenta.sum((1, 2)) >= 9).tolist() == (seen["labels"] == 1).tolist()
    import json
    assert json.loads(json.dumps(meta["key"])) == torch_train.run_key(
        toy, torch_train.config_for(toy, spec), spec)  # the key survives its JSON file


def corrupt_bytes(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def resave_with_nan(path):
    import json

    from helpers import checkpoints

    state = torch.load(path, weights_only=True)
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sha256": checkpoints.sha256_of(path)}))


@pytest.mark.parametrize(("fault", "reason"), [
    (corrupt_bytes, "sha256"),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "sha256"),
    (lambda p: p.write_bytes(b""), "vacío"),
    (resave_with_nan, "no finitos"),
])
def test_a_bad_checkpoint_is_named_and_retrained_never_loaded(empty_data, fault, reason):
    _, meta = torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(),
                                        say=lambda s: None)
    path = Path(meta["checkpoint"])
    fault(path)
    said = []
    again, meta2 = torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(),
                                             say=said.append)
    said = without_estimates(said)
    assert len(said) == 1 and str(path) in said[0] and reason in said[0]
    assert "Se vuelve a entrenar" in said[0]
    assert all(torch.isfinite(t).all() for t in again.state_dict().values()
               if t.is_floating_point())
    assert Path(meta2["checkpoint"]) == path  # retrained and saved again


def test_shipped_checkpoint_is_used_without_training(empty_data, monkeypatch, tmp_path):
    _, meta = torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(),
                                        say=lambda s: None)
    shipped = empty_data / "checkpoints"
    shipped.mkdir(parents=True)
    for suffix in (".pt", ".json"):
        src = Path(meta["checkpoint"]).with_suffix(suffix)
        (shipped / src.name).write_bytes(src.read_bytes())
        src.unlink()
    monkeypatch.setattr(torch_train, "train", lambda *a, **k: pytest.fail("trained"))
    _, meta2 = torch_train.load_or_train(TOY, torch.device("cpu"), say=lambda s: None)
    assert meta2["source"] == "distribuido con los datos"
    assert meta2["checkpoint"] == str(shipped / "resnet18_cifar_fast.pt")


def test_unwritable_cache_keeps_the_trained_model_in_memory(empty_data, monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("XAI_CACHE_DIR", str(blocker / "cache"))
    said = []
    model, meta = torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(),
                                            say=said.append)
    assert "checkpoint" not in meta and model.xai_trained
    said = without_estimates(said)
    assert len(said) == 1 and "no se puede escribir" in said[0] and "memoria" in said[0]


@pytest.mark.parametrize("failure", ["full disk", "torch writer"])
def test_a_failed_save_keeps_the_trained_model_and_leaves_no_file(empty_data, monkeypatch,
                                                                  failure):
    from faults import full_disk_after

    if failure == "full disk":
        monkeypatch.setattr("builtins.open", full_disk_after(1000))
    else:
        def broken(*args, **kwargs):
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64")
        monkeypatch.setattr(torch, "save", broken)
    said = []
    model, meta = torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(),
                                            say=said.append)
    assert model.xai_trained and "checkpoint" not in meta and not model.training
    resume, final = without_estimates(said)  # the per-epoch state failed too: said once
    assert "reanudar" in resume and "el entrenamiento sigue" in resume
    assert "sigue en memoria" in final and "XAI_CACHE_DIR" in final
    folder = Path(os.environ["XAI_CACHE_DIR"]) / "checkpoints"
    assert list(folder.iterdir()) == []  # no partial weights, no metadata, no temporary


def test_weights_bytes_load_back_equal(empty_data):
    model = resnet18_cifar(TOY.cifar_width, weights=None)
    path = empty_data / "w.pt"
    path.write_bytes(torch_train.weights_bytes(model))
    again = torch_train.load_weights(path, TOY.cifar_width)
    for name, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name


def test_the_same_configuration_trains_the_same_weights(empty_data):
    """Seeded before the model is built: initial weights, data order and augmentation."""
    runs = []
    for _ in range(2):
        torch.manual_seed(12345 + len(runs))  # whatever the caller's RNG state was
        model, meta = torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(),
                                                force=True, say=lambda s: None)
        runs.append((model.state_dict(), meta))
    (first, meta1), (second, meta2) = runs
    assert meta1["history"]["loss"] == meta2["history"]["loss"]
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
    assert meta1["sha256"] == meta2["sha256"]  # the same checkpoint bytes, too


def test_the_checkpoint_key_records_the_initialization_actually_used(empty_data):
    wide = dataclasses.replace(TOY, cifar_width=64, cifar_epochs=1, cifar_train_size=20)
    model, meta = torch_train.load_or_train(wide, torch.device("cpu"), data=toy_cifar(),
                                            say=lambda s: None)  # no ImageNet file here
    assert model.xai_init == "random" and meta["key"]["init"] == "random"
    saved = json.loads(Path(meta["checkpoint"]).with_suffix(".json").read_text())
    assert saved["key"]["init"] == "random"


def test_an_interrupted_training_resumes_and_ends_as_an_uninterrupted_one(empty_data,
                                                                         monkeypatch):
    three = dataclasses.replace(TOY, cifar_epochs=3)
    said = []
    whole, meta = torch_train.load_or_train(three, torch.device("cpu"), data=toy_cifar(),
                                            force=True, say=said.append)
    folder = Path(os.environ["XAI_CACHE_DIR"]) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["resnet18_cifar_fast.json",
                                                        "resnet18_cifar_fast.pt"]  # no state left
    real_predict, calls = torch_train.predict, []

    def interrupt_in_epoch_2(*args, **kwargs):  # Ctrl-C during epoch 2's validation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(torch_train, "predict", interrupt_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        torch_train.load_or_train(three, torch.device("cpu"), data=toy_cifar(), force=True,
                                  say=said.append)
    monkeypatch.setattr(torch_train, "predict", real_predict)
    (folder / "resnet18_cifar_fast.pt").unlink()  # as if no finished model had been saved
    said.clear()
    resumed, meta2 = torch_train.load_or_train(three, torch.device("cpu"), data=toy_cifar(),
                                               say=said.append)
    assert any("Se reanuda" in line and "1 de 3" in line for line in said), said
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert meta2["history"]["loss"] == meta["history"]["loss"]
    assert meta2["best_epoch"] == meta["best_epoch"]
    assert not (folder / "resnet18_cifar_fast.resume.pt").exists()  # finished: state removed


def test_training_says_how_long_and_a_long_cpu_run_needs_an_opt_in(empty_data, monkeypatch):
    from helpers.core import training as core_training

    said = []
    torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(), force=True,
                              say=said.append)
    assert any("Entrenamiento de la ResNet-18 (1 época)" in s and "en este dispositivo" in s
               for s in said), said
    monkeypatch.setattr(torch_train, "estimate_seconds", lambda *a: 3 * 3600.0)
    monkeypatch.delenv(core_training.LONG_ENV, raising=False)
    monkeypatch.setattr(torch_train, "train", lambda *a, **k: pytest.fail("a long run started"))
    said.clear()
    with pytest.raises(core_training.LongRunError, match="XAI_ALLOW_LONG"):
        torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(), force=True,
                                  say=said.append)
    assert "180 min" in said[0] and "XAI_PROFILE=fast" in said[1] and "GPU" in said[1]
    monkeypatch.setattr(torch_train, "train", lambda *a, **k: pytest.fail("opted in"))
    with pytest.raises(pytest.fail.Exception, match="opted in"):  # the opt-in lets it start
        torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(), force=True,
                                  say=said.append, allow_long=True)
    monkeypatch.setenv(core_training.LONG_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="opted in"):
        torch_train.load_or_train(TOY, torch.device("cpu"), data=toy_cifar(), force=True,
                                  say=said.append)


def test_the_estimate_leaves_model_and_random_state_untouched():
    model = resnet18_cifar(4, weights=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    config = torch_train.TrainConfig(epochs=2, batch_size=8, width=4)
    seconds = torch_train.estimate_seconds(model, _toy_data(40), _toy_data(8), config,
                                           torch.device("cpu"), 2)
    assert 0 < seconds < 60 and torch.equal(rng, torch.get_rng_state())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
