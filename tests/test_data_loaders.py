"""CIFAR-10 and Flowers102 loaders on tiny fake copies, and on the real copies when present."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.data import DataNotFoundError, load_cifar10, load_flowers102, resolve
from helpers.data import cifar10 as cifar_module
from helpers.torch import normalization as norm


@pytest.fixture
def data(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("XAI_DATA_DIR", str(root))
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return root


def _fake_cifar(root: Path, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
              for s in ("train", "test")}
    arrays |= {f"y_{s}": np.arange(n) % 10 for s in ("train", "test")}
    (root / "cifar10").mkdir()
    np.savez(root / "cifar10" / "cifar10_subset.npz", **arrays)


def test_cifar_local_npz_subset_normalized_and_balanced(data):
    _fake_cifar(data)
    d = load_cifar10(n_train=20, n_test=10)
    assert (len(d.train), len(d.test)) == (20, 10) and "copia local" in d.source
    assert np.bincount(d.train.labels).tolist() == [2] * 10
    x, y = d.train.batch([0, 1])
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    pixels = torch.from_numpy(d.train.images[:2]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(norm.CIFAR10.denormalize(x), pixels)
    assert torch.equal(y, torch.from_numpy(d.train.labels[:2]))
    assert d.classes[0] == "airplane" and len(d.classes) == 10


def test_cifar_download_path_is_taken_when_nothing_is_local(data, monkeypatch):
    fake = np.zeros((10, 32, 32, 3), np.uint8), np.arange(10)
    monkeypatch.setattr(resolve, "reachable", lambda url, timeout=None: True)
    calls = []

    def fake_torchvision(root, download):
        calls.append((root, download))
        return (*fake, *fake)

    monkeypatch.setattr(cifar_module, "_torchvision_arrays", fake_torchvision)
    d = load_cifar10()
    assert calls == [(data, True)] and d.source.startswith("descargado")


def test_cifar_missing_everywhere_gives_a_clear_error(data, monkeypatch):
    monkeypatch.setattr(resolve, "reachable", lambda url, timeout=None: False)
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10()
    msg = str(err.value)
    assert "cifar10_subset.npz" in msg and "cifar-10-batches-py" in msg and "To fix" in msg


def test_cifar_images_reject_bad_arrays():
    with pytest.raises(ValueError, match=r"uint8 \[N,32,32,3\]"):
        cifar_module.CifarImages(np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2))


def _jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, format="JPEG")
    return buf.getvalue()


def _fake_flowers(root: Path, split_file: str, per_class: int = 3, classes: int = 4) -> None:
    labels = np.repeat(np.arange(classes), per_class)
    blobs = [_jpeg((int(y) * 60, 10, 10)) for y in labels]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    (root / "flowers102").mkdir(exist_ok=True)
    np.savez(root / "flowers102" / f"flowers102_{split_file}.npz",
             jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets, label=labels,
             image_id=np.arange(len(labels)) + 1,
             class_names=np.array([f"flor {i}" for i in range(102)]))


def test_flowers_local_npz_like_tfds(data):
    _fake_flowers(data, "train")
    _fake_flowers(data, "test_subset")
    ds, info = load_flowers102("train", n=8)
    items = list(ds)
    assert len(items) == info.num_examples == 8 and info.official_num_examples == 1020
    image, label = items[0]
    assert image.dtype.name == "uint8" and image.shape == (30, 40, 3)
    assert label.dtype.name == "int64"
    assert np.bincount([int(y) for _, y in items]).tolist() == [2, 2, 2, 2]
    assert int(items[-1][1]) == 3 and int(image.numpy()[..., 0].mean()) < 30  # label 0 is dark
    _, test_info = load_flowers102("test")
    assert "6149" in test_info.note and test_info.official_num_examples == 6149


def test_flowers_unknown_split_and_missing_data(data, monkeypatch):
    with pytest.raises(ValueError, match="validation"):
        load_flowers102("valid")
    monkeypatch.setattr(resolve, "reachable", lambda url, timeout=None: False)
    with pytest.raises(DataNotFoundError, match=r"flowers102_val\.npz"):
        load_flowers102("validation")


REAL = Path(os.environ.get("XAI_DATA_DIR", "data"))
needs_real = pytest.mark.skipif(not (REAL / "cifar10" / "cifar10_subset.npz").exists(),
                                reason="real data copy not in $XAI_DATA_DIR")


@needs_real
def test_real_cifar_statistics_match_the_normalization():
    d = load_cifar10(n_train=2000, n_test=100)
    x, _ = d.train.batch(np.arange(len(d.train)))
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


@needs_real
def test_real_flowers_splits_and_class_names():
    ds, info = load_flowers102("validation", n=102)
    assert info.num_examples == 102 and len(info.class_names) == 102
    assert info.class_names[0] == "pink primrose"
    assert sorted(int(y) for _, y in ds) == list(range(102))
