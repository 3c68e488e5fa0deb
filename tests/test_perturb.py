"""Perturbations (exact formulas, seeds, clipping) and the robustness table."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import gaussian_filter

from helpers.keras import models as km
from helpers.keras import perturb


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (3, 20, 24, 3)).astype(np.float32)


@pytest.mark.parametrize("name", list(perturb.PERTURBATIONS))
def test_every_perturbation_keeps_shape_range_and_is_reproducible(name, images):
    p = perturb.PERTURBATIONS[name]
    np.testing.assert_allclose(p.apply(images, 0.0, seed=1).numpy(), images, atol=1e-4)
    strongest = p.severities[-1]
    out = p.apply(images, strongest, seed=3).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - images).mean() > 1.0  # it does perturb
    np.testing.assert_array_equal(out, p.apply(images, strongest, seed=3).numpy())
    assert list(p.severities) == sorted(p.severities) and p.title and p.unit


def test_gaussian_noise_has_the_requested_spread_and_depends_on_the_seed():
    gray = np.full((2, 64, 64, 3), 128, np.float32)
    out = perturb.gaussian_noise(gray, 10.0, seed=0).numpy()
    assert np.std(out - gray) == pytest.approx(10.0, rel=0.03)
    assert abs(np.mean(out - gray)) < 0.3
    assert not np.array_equal(out, perturb.gaussian_noise(gray, 10.0, seed=1).numpy())
    seeded = perturb.gaussian_noise(gray, 10.0, seed=tf.constant([0, 0], tf.int64)).numpy()
    np.testing.assert_array_equal(out, seeded)  # int seed s == [s, 0]


def test_blur_matches_scipy_with_mirrored_borders(images):
    for sigma in (1.0, 2.0):
        got = perturb.gaussian_blur(images, sigma).numpy()
        want = np.stack([gaussian_filter(im, (sigma, sigma, 0), mode="mirror", truncate=3.0)
                         for im in images])
        np.testing.assert_allclose(got, want, atol=1e-3)
    flat = np.full((1, 9, 9, 3), 77.0, np.float32)
    np.testing.assert_allclose(perturb.gaussian_blur(flat, 1.5).numpy(), flat, atol=1e-4)


def test_brightness_adds_a_fraction_of_the_range_and_clips(images):
    out = perturb.brightness(images, 0.2).numpy()
    np.testing.assert_allclose(out, np.clip(images + 51.0, 0, 255), atol=1e-4)
    assert perturb.brightness(images, -1.0).numpy().max() == 0


def test_rotation_by_right_angles_is_exact():
    x = np.random.default_rng(1).uniform(0, 255, (2, 9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(perturb.rotation(x, 90).numpy(), np.rot90(x, 1, axes=(1, 2)),
                               atol=1e-3)
    np.testing.assert_allclose(perturb.rotation(x, -90).numpy(), np.rot90(x, -1, axes=(1, 2)),
                               atol=1e-3)
    np.testing.assert_allclose(perturb.rotation(x, 180).numpy(), x[:, ::-1, ::-1], atol=1e-3)


def test_occlusion_paints_one_gray_square_of_the_requested_area():
    x = np.zeros((4, 40, 40, 3), np.float32)
    out = perturb.occlusion(x, 0.25, seed=5).numpy()
    gray = (out == perturb.GRAY).all(axis=-1)
    assert (gray.sum(axis=(1, 2)) == 20 * 20).all()  # side sqrt(0.25) * 40
    for mask in gray:  # one axis-aligned square
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert np.ptp(rows) == np.ptp(cols) == 19
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
    corners = {tuple(np.argwhere(m)[0]) for m in gray}
    assert len(corners) > 1  # positions differ between images
    np.testing.assert_array_equal(out, perturb.occlusion(x, 0.25, seed=5).numpy())


def tiny_classifiers(n: int = 2, size: int = 32, k: int = 3):
    """``n`` build_classifier models sharing one random backbone, with different heads."""
    keras.utils.set_random_seed(0)
    first = km.build_classifier("mobilenet", k, weights=None, input_size=size)
    models = [first]
    for i in range(1, n):
        keras.utils.set_random_seed(i)
        m = km.build_classifier("mobilenet", k, weights=None, input_size=size)
        m.get_layer("backbone").set_weights(first.get_layer("backbone").get_weights())
        models.append(m)
    return models


def test_robustness_equals_a_direct_computation_with_shared_backbones():
    size = 32
    models = tiny_classifiers(3, size)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (10, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype=np.float32)[y])).batch(4)
    chosen = {name: perturb.PERTURBATIONS[name] for name in ("noise", "occlusion")}
    named = {f"m{i}": m for i, m in enumerate(models)}
    rows = perturb.robustness(named, ds, chosen, seed=7, progress=False)
    assert len(rows) == len(models) * len(perturb.conditions(chosen))
    assert [r["perturbation"] for r in rows[:3]] == ["none"] * 3 and rows[0]["n"] == 10
    for name, severity in perturb.conditions(chosen):
        for model_name, model in named.items():
            hits = []
            for b, start in enumerate(range(0, 10, 4)):
                xb = x[start:start + 4]
                if name != "none":
                    xb = chosen[name].apply(xb, severity, seed=tf.constant([7, b], tf.int64))
                hits += list(np.asarray(model(xb)).argmax(1) == y[start:start + 4])
            accuracy = perturb.accuracy_of(rows, model_name, name, severity)
            assert accuracy == pytest.approx(np.mean(hits))
            np.testing.assert_array_equal(perturb.correct_of(rows, model_name, name, severity),
                                          hits)
    single = perturb.robustness(models[0], ds, chosen, seed=7, progress=False)
    assert [r["accuracy"] for r in single] == [r["accuracy"] for r in rows if r["model"] == "m0"]


def test_shared_predictor_shares_what_the_backbones_have_in_common():
    a, b = tiny_classifiers(2)
    tuned = tiny_classifiers(3)[2]  # same backbone, then its top layer "fine-tuned"
    top = km.find_layer(tuned, "conv_pw_13")
    top.kernel.assign(top.kernel.numpy() * 1.5)
    keras.utils.set_random_seed(9)
    other = km.build_classifier("mobilenet", 3, weights=None, input_size=32)  # own backbone
    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    members = {"a": a, "b": b, "tuned": tuned, "other": other, "plain": plain}
    assert perturb._common_cut(list(members.values())) == ("conv_pw_13", [0, 1, 2])
    assert perturb._common_cut([a, b, other]) == (None, [0, 1])
    predict = perturb._shared_predictor(members)
    x = tf.random.uniform((2, 32, 32, 3), 0, 255)
    for logits, model in zip(predict(x), members.values(), strict=True):
        np.testing.assert_allclose(np.asarray(logits), np.asarray(model(x)), rtol=1e-3, atol=0)
    # (random MobileNets give tiny logits: relative tolerances only)
    assert np.abs(np.asarray(tuned(x) - a(x))).max() > 0.1 * np.abs(np.asarray(a(x))).max()


def test_a_difference_inside_a_residual_block_shares_only_whole_backbones():
    keras.utils.set_random_seed(0)
    first = km.build_classifier("mobilenet_v2", 3, weights=None, input_size=32)
    twin = km.build_classifier("mobilenet_v2", 3, weights=None, input_size=32)
    twin.get_layer("backbone").set_weights(first.get_layer("backbone").get_weights())
    inner = km.build_classifier("mobilenet_v2", 3, weights=None, input_size=32)
    inner.get_layer("backbone").set_weights(first.get_layer("backbone").get_weights())
    layer = km.find_layer(inner, "block_15_project")  # inside a block with a skip connection
    layer.kernel.assign(layer.kernel.numpy() * 1.5)
    assert perturb._common_cut([first, twin, inner]) == (None, [0, 1])
    predict = perturb._shared_predictor({"first": first, "twin": twin, "inner": inner})
    x = tf.random.uniform((2, 32, 32, 3), 0, 255)
    for logits, model in zip(predict(x), [first, twin, inner], strict=True):
        np.testing.assert_allclose(np.asarray(logits), np.asarray(model(x)), rtol=1e-3, atol=0)


def test_mean_drop_and_lookup():
    rows = [{"model": "m", "perturbation": "none", "severity": 0.0, "accuracy": 0.8},
            {"model": "m", "perturbation": "noise", "severity": 10.0, "accuracy": 0.6},
            {"model": "m", "perturbation": "blur", "severity": 1.0, "accuracy": 0.4}]
    assert perturb.mean_drop(rows) == {"m": pytest.approx(0.3)}
    assert perturb.accuracy_of(rows, "m", "blur", 1.0) == 0.4
    with pytest.raises(KeyError):
        perturb.accuracy_of(rows, "m", "blur", 2.0)
    rows = [{"model": "m", "perturbation": "blur", "severity": s, "correct": c}
            for s, c in [(1.0, [1, 0, 1]), (2.0, [0, 0, 1])]]
    np.testing.assert_array_equal(perturb.correct_of(rows, "m", "blur", 2.0), [False, False, True])
    np.testing.assert_allclose(perturb.correct_of(rows, "m", "blur", None), [0.5, 0, 1])
    with pytest.raises(KeyError):
        perturb.correct_of(rows, "m", "noise", None)


def test_robustness_rows_are_reused_only_for_the_same_key(dirs, monkeypatch):
    models = {"m0": tiny_classifiers(1)[0]}
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 3, 6))).batch(3)
    chosen = {"noise": perturb.PERTURBATIONS["noise"]}
    calls = []
    real = perturb._measure
    monkeypatch.setattr(perturb, "_measure", lambda *a: calls.append(1) or real(*a))
    first = perturb.robustness(models, ds, chosen, progress=False, cache_key={"m0": "abc"})
    again = perturb.robustness(models, ds, chosen, progress=False, cache_key={"m0": "abc"})
    assert again == first and len(calls) == 1  # reused from the cache
    perturb.robustness(models, ds, chosen, progress=False, cache_key={"m0": "other"})
    perturb.robustness(models, ds, chosen, seed=1, progress=False, cache_key={"m0": "abc"})
    perturb.robustness(models, ds, chosen, progress=False, cache_key={"m0": None})  # unsaved
    perturb.robustness(models, ds, chosen, progress=False, cache_key={"m0": None})
    assert len(calls) == 5
