"""Bad input gets a clear ValueError (or DataNotFoundError) naming the problem and the fix."""

import zipfile

import numpy as np
import pytest
import torch
from toy_models import SmallConvNet

from helpers.core import validate
from helpers.data import DataNotFoundError, balanced_subset, load_cifar10, resolve
from helpers.torch import explain as te

EXPLAINERS = {
    "saliency": lambda m, x, **k: te.saliency(m, x, **k),
    "grad_cam": lambda m, x, **k: te.grad_cam(m, x, "conv2", **k),
    "guided_grad_cam": lambda m, x, **k: te.guided_grad_cam(m, x, "conv2", **k),
    "occlusion": lambda m, x, **k: te.occlusion(m, x, patch=4, stride=4, **k),
    "integrated_gradients": lambda m, x, **k: te.integrated_gradients(m, x, steps=4, **k),
    "smoothgrad": lambda m, x, **k: te.smoothgrad(te.saliency, m, x, n_samples=2, **k),
}


@pytest.mark.parametrize("name", EXPLAINERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_pixel_is_rejected_by_every_explainer(name, bad):
    x = torch.rand(2, 3, 8, 8)
    x[1, 2, 3, 4] = bad
    message = r"x has 1 non-finite value\(s\) \(NaN or inf\) out of 384"
    with pytest.raises(ValueError, match=message):
        EXPLAINERS[name](SmallConvNet(), x)


def test_non_finite_baselines_and_noise_levels_are_rejected():
    model, x = SmallConvNet(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="baseline has 192 non-finite"):
        te.integrated_gradients(model, x, baseline=torch.tensor(float("nan")), steps=2)
    for sigma in (float("nan"), -0.1, float("inf"), True):
        with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0"):
            te.smoothgrad(te.saliency, model, x, sigma=sigma)
    with pytest.raises(ValueError, match=r"n_samples must be an int >= 1, got 2\.5"):
        te.smoothgrad(te.saliency, model, x, n_samples=2.5)


@pytest.mark.parametrize("shape", [(1, 3, 1, 8), (1, 3, 8, 1), (1, 3, 1, 1)])
def test_the_blur_baseline_works_on_one_pixel_high_or_wide_images(shape):
    x = torch.rand(shape)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3))
    attr = te.integrated_gradients(model, x, target=1, baseline="blur", steps=8)
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    flat = torch.full(shape, 0.3)
    torch.testing.assert_close(te.make_reference("blur", flat, None), flat)  # blur keeps a constant


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
@pytest.mark.parametrize("name", ["occlusion", "integrated_gradients", "smoothgrad"])
def test_batch_size_must_be_a_positive_int_and_zero_is_not_default(name, size):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        EXPLAINERS[name](SmallConvNet(), torch.rand(1, 3, 8, 8), batch_size=size)


@pytest.mark.parametrize(("patch", "match"), [
    (4.0, "patch must be an int >= 1, got 4.0"),
    ((2, 3, 4), r"patch must be an int or a pair \(height, width\), got \(2, 3, 4\)"),
    ((2, 0), r"patch\[1\] must be an int >= 1, got 0"),
])
def test_occlusion_patch_is_an_int_or_a_pair(patch, match):
    with pytest.raises(ValueError, match=match):
        te.occlusion(SmallConvNet(), torch.rand(1, 3, 8, 8), patch=patch)


def test_a_huge_target_is_out_of_range_not_an_overflow():
    with pytest.raises(ValueError, match="out of range"):
        te.saliency(SmallConvNet(), torch.rand(1, 3, 8, 8), target=10**20)


def test_steps_must_be_an_int():
    with pytest.raises(ValueError, match=r"steps must be an int, got 2\.5"):
        te.integrated_gradients(SmallConvNet(), torch.rand(1, 3, 8, 8), steps=2.5)


def test_validate_helpers():
    assert validate.int_pair("patch", 3) == (3, 3)
    assert validate.int_pair("patch", [2, np.int64(5)]) == (2, 5)
    assert validate.batch_size_or(32, None) == 32 and validate.batch_size_or(32, 8) == 8
    assert validate.non_negative("sigma", 0) == 0.0
    validate.require_finite("x", 0, 10)


def test_subset_sizes_are_checked():
    labels = np.repeat(np.arange(3), 4)
    assert len(balanced_subset(labels, 12)) == 12 and len(balanced_subset(labels, None)) == 12
    for bad in (2.5, True, 0, -3):
        with pytest.raises(ValueError, match="subset size must be an int >= 1 or None"):
            balanced_subset(labels, bad)
    with pytest.raises(ValueError, match="asked for 13 items but the split has 12"):
        balanced_subset(labels, 13)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "cifar10").mkdir(parents=True)
    monkeypatch.setenv("XAI_DATA_DIR", str(root))
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(resolve, "reachable", lambda url, timeout=None: False)
    return root


def write_cifar_npz(path, drop: str | None = None):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
              "y_train": np.arange(20) % 10, "x_test": rng.integers(0, 256, (10, 32, 32, 3),
                                                                   dtype=np.uint8),
              "y_test": np.arange(10)}
    arrays.pop(drop, None)
    np.savez(path, **arrays)


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
    lambda p: p.write_bytes(b""),  # empty
    flip_a_byte,
    lambda p: write_cifar_npz(p, drop="y_test"),  # a key is missing
])
def test_a_damaged_npz_names_the_file_and_the_fix(data_dir, damage):
    path = data_dir / "cifar10" / "cifar10_subset.npz"
    write_cifar_npz(path)
    assert len(load_cifar10(n_train=20).train) == 20
    damage(path)
    with pytest.raises(DataNotFoundError) as info:
        load_cifar10(n_train=20)
    message = str(info.value)
    assert str(path) in message and "Delete it and run again" in message
    assert "XAI_DATA_DIR" in message


def test_a_misspelt_data_dir_is_reported_not_created(tmp_path, monkeypatch):
    missing = tmp_path / "dat"
    monkeypatch.setenv("XAI_DATA_DIR", str(missing))
    with pytest.raises(DataNotFoundError, match="not an existing folder"):
        load_cifar10(n_train=20)
    assert not missing.exists()


def test_a_cache_path_under_a_file_is_explained(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("XAI_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(NotADirectoryError, match=r"a file stands in its path.*XAI_CACHE_DIR"):
        resolve.cache_dir()


def test_read_npz_reports_a_bad_zip_as_damaged(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", b"not an array")
    with pytest.raises(DataNotFoundError, match="damaged or incomplete"):
        resolve.read_npz(path, ["a"])
