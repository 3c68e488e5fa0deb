import dataclasses

import pytest

from helpers import profile


def test_env_var_overrides_auto_detection(monkeypatch):
    monkeypatch.setattr(profile, "cuda_gpu_present", lambda: True)
    monkeypatch.setenv(profile.ENV_VAR, "fast")
    assert profile.get_profile().name == "fast"
    monkeypatch.setattr(profile, "cuda_gpu_present", lambda: False)
    monkeypatch.setenv(profile.ENV_VAR, "FULL")
    assert profile.get_profile().name == "full"


@pytest.mark.parametrize(("gpu", "expected"), [(True, "full"), (False, "fast")])
def test_auto_profile_follows_gpu(monkeypatch, gpu, expected):
    monkeypatch.delenv(profile.ENV_VAR, raising=False)
    monkeypatch.setattr(profile, "cuda_gpu_present", lambda: gpu)
    assert profile.get_profile().name == expected


def test_explicit_name_wins_and_unknown_name_is_rejected(monkeypatch):
    monkeypatch.setenv(profile.ENV_VAR, "full")
    assert profile.get_profile("fast").name == "fast"
    with pytest.raises(ValueError, match="choose one of"):
        profile.get_profile("turbo")


def test_hidden_gpu_is_not_seen(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert profile.cuda_gpu_present() is False


def test_profiles_differ_only_in_sizes():
    fast, full = profile.FAST, profile.FULL
    assert fast.reduced and not full.reduced
    for field in dataclasses.fields(profile.Profile):
        a, b = getattr(fast, field.name), getattr(full, field.name)
        if field.name != "name":  # sizes: positive ints or None (all); never a bool
            for value in (a, b):
                assert value is None or (type(value) is int and value > 0), field.name
    assert fast.cifar_width < full.cifar_width == 64 and fast.cifar_epochs < full.cifar_epochs
    assert fast.cifar_test_size < 10_000 and full.cifar_test_size is None
    assert fast.flowers_train_size is None and fast.flowers_val_size is None  # official splits
