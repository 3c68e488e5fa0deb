"""MixUp, CutMix (ours and Keras'), the Keras augmentation block and the Albumentations map."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from helpers.keras import augment

N, S, K = 8, 64, 8


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (N, S, S, 3), dtype=np.uint8), np.arange(N, dtype=np.int64)


@pytest.fixture(scope="module")
def coloured():
    """Image i is a constant colour 30 * i: every pixel tells which image it came from."""
    images = np.broadcast_to((30 * np.arange(N, dtype=np.uint8))[:, None, None, None],
                             (N, S, S, 3)).copy()
    return images, tf.one_hot(np.arange(N), K)  # the class of image i is i


def pixel_fractions(images) -> np.ndarray:
    """[N, K]: fraction of each image's pixels coming from image (= class) k."""
    source = np.rint(np.asarray(images)[..., 0] / 30).astype(int)
    return np.stack([(source == k).mean(axis=(1, 2)) for k in range(K)], axis=1)


def test_mixup_is_a_convex_mix_with_the_label_lambda(batch):
    images, labels = batch
    mixed, soft = (np.asarray(t) for t in augment.mixup(images, labels, num_classes=K, seed=3))
    assert mixed.dtype == np.float32 and soft.shape == (N, K)
    np.testing.assert_allclose(soft.sum(axis=1), 1, atol=1e-6)
    x = images.astype(np.float32)
    for i in range(N):
        lam = soft[i, i]
        partner = int(np.argmax(np.where(np.arange(K) == i, -1, soft[i]))) if lam < 1 else i
        np.testing.assert_allclose(mixed[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-3)
    lams = np.diag(soft)[np.diag(soft) < 1]
    assert len(np.unique(lams.round(6))) > 1  # one lambda per image


def test_mixup_per_batch_uses_one_lambda(batch):
    images, labels = batch
    _, soft = augment.mixup(images, labels, alpha=1.0, num_classes=K, seed=5, per_sample=False)
    own = np.diag(np.asarray(soft))
    lam = own[own < 1 - 1e-6]  # images paired with another one
    assert len(lam) >= 4
    np.testing.assert_allclose(lam, lam[0], atol=1e-6)


def test_integer_and_one_hot_labels_give_the_same_result(batch):
    images, labels = batch
    a = augment.cutmix(images, labels, num_classes=K, seed=7)
    b = augment.cutmix(images, tf.one_hot(labels, K), seed=7)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    with pytest.raises(ValueError, match="num_classes"):
        augment.mixup(images, labels)


@pytest.mark.parametrize("fn", [augment.mixup, augment.cutmix])
def test_seeded_results_repeat_and_seeds_differ(batch, fn):
    images, labels = batch
    first = fn(images, labels, num_classes=K, seed=11)
    again = fn(images, labels, num_classes=K, seed=11)
    other = fn(images, labels, num_classes=K, seed=12)
    np.testing.assert_array_equal(np.asarray(first[0]), np.asarray(again[0]))
    np.testing.assert_array_equal(np.asarray(first[1]), np.asarray(again[1]))
    assert not np.array_equal(np.asarray(first[1]), np.asarray(other[1]))


def test_cutmix_label_weights_equal_the_pasted_pixel_fraction(coloured):
    images, labels = coloured
    partial_boxes = 0
    for seed in range(30):
        mixed, soft = augment.cutmix(images, labels, alpha=1.0, seed=seed)
        soft = np.asarray(soft)
        np.testing.assert_allclose(soft.sum(axis=1), 1, atol=1e-6)
        np.testing.assert_allclose(pixel_fractions(mixed), soft, atol=1e-6)
        partial_boxes += int(((soft > 0) & (soft < 1)).sum())
    assert partial_boxes > 100  # the check above covered many real boxes


def test_cutmix_boxes_are_clipped_to_the_image(coloured):
    """A centre near a border gives a box cut by the border: the pasted area is a rectangle
    touching the border, smaller than the unclipped box, and the label follows the pixels."""
    images, labels = coloured
    touching = 0
    for seed in range(30):
        mixed, _ = augment.cutmix(images, labels, alpha=1.0, seed=seed)
        source = np.rint(np.asarray(mixed)[..., 0] / 30).astype(int)
        for i in range(N):
            pasted = source[i] != i
            if not pasted.any():
                continue
            rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
            assert pasted[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one rectangle
            touching += rows[0] == 0 or cols[0] == 0 or rows[-1] == S - 1 or cols[-1] == S - 1
    assert touching > 10


def test_keras_cutmix_label_weight_is_not_the_pasted_fraction(coloured):
    """keras.layers.CutMix (3.15) draws a box inside the image (start uniform in
    [0, side - cut]), pastes the pixels whose integer coordinates fall in [start, start + cut),
    but weights the labels by the real-valued box area cut_w * cut_h / (W * H). The two differ
    by up to about one row plus one column of pixels; ours are equal."""
    images, labels = coloured
    layer = keras.layers.CutMix(factor=1.0, seed=3)
    errors = []
    for _ in range(5):
        out = layer({"images": images.astype(np.float32), "labels": labels}, training=True)
        soft = np.asarray(out["labels"])
        np.testing.assert_allclose(soft.sum(axis=1), 1, atol=1e-5)
        errors.append(np.abs(pixel_fractions(out["images"]) - soft).max(axis=1))
    errors = np.concatenate(errors)
    assert errors.max() > 1e-3  # clearly not the pasted fraction ...
    assert errors.max() <= (2 * S + 1) / S**2  # ... but off by less than a row + a column


def test_keras_mixup_is_per_sample_like_ours(batch):
    """keras.layers.MixUp: one Beta(alpha, alpha) weight per image, the same for image and
    label (float32 images), partners by a shuffled batch: the same recipe as mixup()."""
    images, labels = batch
    layer = keras.layers.MixUp(alpha=0.2, seed=1)
    out = layer({"images": images, "labels": tf.one_hot(labels, K)}, training=True)
    mixed, soft = np.asarray(out["images"]), np.asarray(out["labels"])
    assert mixed.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=1), 1, atol=1e-5)
    x = images.astype(np.float32)
    for i in range(N):
        lam = soft[i, i]
        if lam < 1 - 1e-6:
            j = int(np.argmax(np.where(np.arange(K) == i, -1, soft[i])))
            np.testing.assert_allclose(mixed[i], lam * x[i] + (1 - lam) * x[j], atol=1e-2)


@pytest.mark.parametrize("fn", [augment.mixup, augment.cutmix])
def test_works_inside_a_batched_dataset(batch, fn):
    images, labels = batch
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    out = list(ds.map(lambda x, y: fn(x, y, num_classes=K, seed=tf.constant([1, 2]))))
    assert len(out) == 2
    for x, y in out:
        assert x.shape == (4, S, S, 3) and x.dtype == tf.float32 and y.shape == (4, K)
        np.testing.assert_allclose(np.asarray(y).sum(axis=1), 1, atol=1e-6)
    direct = fn(images[:4], labels[:4], num_classes=K, seed=tf.constant([1, 2]))
    np.testing.assert_array_equal(np.asarray(out[0][1]), np.asarray(direct[1]))


def test_beta_samples_have_the_beta_mean_and_variance():
    lam = np.asarray(augment.beta_sample([20000], 0.4, tf.constant([0, 1])))
    assert np.all((lam >= 0) & (lam <= 1)) and np.isfinite(lam).all()
    assert abs(lam.mean() - 0.5) < 0.01
    assert abs(lam.var() - 0.25 / 1.8) < 0.01  # a*b / ((a+b)^2 (a+b+1)) = 1 / (4 * 1.8)


def test_augmentation_block_acts_only_in_training(batch):
    images, _ = batch
    block = augment.augmentation_block(seed=0)
    np.testing.assert_array_equal(np.asarray(block(images, training=False)), images)
    out = np.asarray(block(images, training=True))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - images).mean() > 1


def test_albumentations_map_restores_static_shape_and_is_seeded(batch):
    images, labels = batch
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    out = augment.albumentations_map(ds, augment.albumentations_transform(size=32, seed=0), 32)
    assert out.element_spec[0].shape == (32, 32, 3) and out.element_spec[0].dtype == tf.uint8
    first = np.stack([x for x, _ in out.as_numpy_iterator()])
    assert first.shape == (N, 32, 32, 3)
    resized = tf.image.resize(images, (32, 32)).numpy()
    assert np.abs(first - resized).mean() > 1  # the images were augmented
    again = augment.albumentations_map(
        ds, augment.albumentations_transform(size=32, seed=0), size=32)
    np.testing.assert_array_equal(np.stack([x for x, _ in again.as_numpy_iterator()]), first)


def test_albumentations_is_imported_without_torch():
    """In a fresh process (here torch is already imported by conftest): no torch import."""
    code = ("import sys; from helpers.keras.augment import albumentations_transform; "
            "albumentations_transform(32); assert 'albumentations' in sys.modules; "
            "print('torch' in sys.modules)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1], env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("fn", [augment.mixup, augment.cutmix])
def test_bad_labels_are_rejected_not_silently_mixed(batch, fn):
    images, labels = batch
    with pytest.raises(ValueError, match=rf"must lie in \[0, {K}\).*got \[{K}\]"):
        fn(images, tf.tensor_scatter_nd_update(labels, [[0]], [K]), num_classes=K)
    with pytest.raises(ValueError, match="images but"):
        fn(images, labels[:-1], num_classes=K)
    with pytest.raises(ValueError, match="must be integers"):
        fn(images, tf.cast(labels, tf.float32), num_classes=K)
    bad = tf.data.Dataset.from_tensors((images, tf.tensor_scatter_nd_update(labels, [[0]], [-1])))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must lie in"):
        next(iter(bad.map(lambda x, y: fn(x, y, num_classes=K, seed=1))))


@pytest.mark.parametrize("fn", [augment.mixup, augment.cutmix])
def test_integer_one_hot_labels_of_one_image_keep_their_shape(batch, fn):
    images, labels = batch
    one_hot = tf.one_hot(labels[:1], K, dtype=tf.int32)  # [1, K] integers
    _, mixed = fn(images[:1], one_hot, seed=3)
    assert mixed.shape == (1, K)
    np.testing.assert_allclose(np.asarray(mixed), np.asarray(one_hot, np.float32))
    _, from_index = fn(images[:1], labels[:1, None], num_classes=K, seed=3)  # [1, 1] indices
    np.testing.assert_allclose(np.asarray(from_index), np.asarray(mixed))


def test_albumentations_map_rejects_float_images(batch):
    images, labels = batch
    ds = tf.data.Dataset.from_tensor_slices((tf.cast(images, tf.float32) / 255.0, labels))
    with pytest.raises(ValueError, match="expects uint8 images"):
        augment.albumentations_map(ds, augment.albumentations_transform(16), 16)


def test_random_affine_equals_keras_rotation_zoom_and_translation_in_sequence():
    """With each factor fixed, the one-resample layer equals the three Keras layers in a row
    (up to their extra interpolation; smooth images, borders excluded)."""
    rng = np.random.default_rng(0)
    images = ndimage.gaussian_filter(rng.uniform(0, 255, (2, 40, 48, 3)), (0, 3, 3, 0))
    images = images.astype("float32")
    turns, zoom, shift = 0.03, 0.08, 0.05
    layers = keras.layers
    three = keras.Sequential([
        layers.RandomRotation((turns, turns), fill_mode="reflect"),
        layers.RandomZoom((zoom, zoom), fill_mode="reflect"),
        layers.RandomTranslation((shift, shift), (shift, shift), fill_mode="reflect")])
    expected = np.asarray(three(images, training=True))
    ones = np.ones(2, "float32")
    matrix = augment.affine_transform_matrix(turns * ones, (1 + zoom) * ones, shift * 48 * ones,
                                             shift * 40 * ones, 40.0, 48.0)
    fused = np.asarray(keras.ops.image.affine_transform(images, matrix, fill_mode="reflect"))
    inner = (slice(None), slice(6, -6), slice(6, -6))
    assert np.abs(fused - expected)[inner].mean() < 0.5  # of 255; a sign flip gives > 2.9
    assert np.abs(fused - images)[inner].mean() > 3  # and the transform did move the pixels


def test_random_affine_is_seeded_and_the_identity_with_zero_factors(batch):
    images, _ = batch
    layer = augment.RandomAffine(0.1, 0.1, 0.1, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    first = np.asarray(layer(images, training=True))
    again = np.asarray(augment.RandomAffine(0.1, 0.1, 0.1, seed=3)(images, training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, np.asarray(layer(images, training=True)))  # new draw per call
    # a zero range is the identity
    still = augment.RandomAffine(0.0, 0.0, 0.0, seed=0)(images, training=True)
    np.testing.assert_allclose(np.asarray(still), images, atol=1e-3)
