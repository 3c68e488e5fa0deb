"""The tf.data pipeline: resize, batch, one-hot, training-only augmentation and mixing."""

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers.keras import augment, pipeline

K = 5
SIZES = [(40, 60), (64, 48), (33, 33), (80, 50), (45, 70), (64, 64), (50, 41)]


@pytest.fixture(scope="module")
def raw():
    """Variable-size uint8 images like the decoded JPEGs, with int64 labels 0..K-1."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in SIZES]
    labels = np.arange(len(SIZES)) % K

    def gen():
        yield from zip(images, labels, strict=True)

    spec = (tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int64))
    return tf.data.Dataset.from_generator(gen, output_signature=spec), images, labels


def collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_resize_gives_square_uint8_images():
    image = tf.constant(np.full((30, 50, 3), 200, np.uint8))
    out, label = pipeline.resize(image, tf.constant(3, tf.int64), size=32)
    assert out.shape == (32, 32, 3) and out.dtype == tf.uint8 and int(label) == 3
    assert np.all(out.numpy() == 200)  # a constant image stays exactly constant
    ramp = tf.constant(np.tile(np.linspace(0, 255, 64)[None, :, None], (16, 1, 3)))
    assert pipeline.resize(ramp, 0, size=16)[0].numpy().max() <= 255


def test_validation_pipeline_shapes_dtypes_and_order(raw):
    ds, images, labels = raw
    out = pipeline.make_pipeline(ds, batch_size=3, size=32)
    assert out.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    assert out.element_spec[0].dtype == tf.float32 and out.element_spec[1].dtype == tf.int64
    x, y = collect(out)
    assert x.shape == (len(SIZES), 32, 32, 3)
    np.testing.assert_array_equal(y, labels)  # no shuffling outside training
    expected = np.stack([pipeline.resize(im, 0, 32)[0].numpy() for im in images])
    np.testing.assert_array_equal(x, expected.astype(np.float32))
    assert [len(b) for b, _ in out] == [3, 3, 1]


def test_one_hot_labels_for_validation(raw):
    ds, _, labels = raw
    _, y = collect(pipeline.make_pipeline(ds, batch_size=4, size=16, one_hot=K))
    assert y.dtype == np.float32 and y.shape == (len(SIZES), K)
    np.testing.assert_array_equal(y, np.eye(K, dtype=np.float32)[labels])


def add_1000(images, training=False):
    return images + 1000.0 if training else images


def test_augmentation_only_in_training(raw):
    ds, _, labels = raw
    train = pipeline.make_pipeline(ds, 4, training=True, augment=add_1000, size=16)
    valid = pipeline.make_pipeline(ds, 4, training=False, augment=add_1000, size=16)
    x_train, y_train = collect(train)
    x_valid, _ = collect(valid)
    assert x_train.min() >= 1000 and x_valid.max() <= 255
    assert sorted(y_train) == sorted(labels)


def test_keras_augmentation_block_in_the_pipeline(raw):
    ds, _, _ = raw
    block = augment.augmentation_block(seed=0)
    plain, _ = collect(pipeline.make_pipeline(ds, 7, size=32))
    aug, _ = collect(pipeline.make_pipeline(ds, 7, training=True, augment=block, size=32,
                                           shuffle_buffer=1))  # keeps the order
    assert aug.shape == plain.shape and aug.dtype == np.float32
    assert np.abs(aug - plain).mean() > 1


def test_keras_augmentation_repeats_with_its_seed():
    """Many batches in flight: a parallel map would draw the random layers' generator in thread
    order and give other images for the same seed."""
    rng = np.random.default_rng(1)
    ds = tf.data.Dataset.from_tensor_slices((rng.integers(0, 256, (96, 48, 48, 3), np.uint8),
                                             np.arange(96) % K))
    runs = [collect(pipeline.make_pipeline(ds, 8, training=True, size=48, seed=1,
                                           augment=augment.augmentation_block(seed=seed)))[0]
            for seed in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_mix_needs_one_hot_and_runs_only_in_training(raw):
    ds, _, _ = raw
    mix = functools.partial(augment.mixup, alpha=0.4)
    with pytest.raises(ValueError, match="one_hot"):
        pipeline.make_pipeline(ds, 4, training=True, mix=mix)
    _, y_train = collect(pipeline.make_pipeline(ds, 7, training=True, mix=mix, one_hot=K,
                                               size=16))
    _, y_valid = collect(pipeline.make_pipeline(ds, 7, training=False, mix=mix, one_hot=K,
                                               size=16))
    np.testing.assert_allclose(y_train.sum(axis=1), 1, atol=1e-6)
    assert ((y_train > 0) & (y_train < 1)).any()  # soft labels
    assert set(np.unique(y_valid)) == {0.0, 1.0}  # validation stays one-hot


def test_mixing_is_reproducible_per_seed_and_new_every_epoch(raw):
    ds, _, _ = raw

    def batches(seed):
        return pipeline.make_pipeline(ds, 7, training=True, one_hot=K, size=16, seed=seed,
                                      mix=functools.partial(augment.cutmix, alpha=1.0))

    first = batches(0)
    epoch1, epoch2 = collect(first), collect(first)
    again = collect(batches(0))
    other = collect(batches(1))
    np.testing.assert_array_equal(epoch1[1], again[1])
    np.testing.assert_array_equal(epoch1[0], again[0])
    assert not np.array_equal(epoch1[1], epoch2[1])
    assert not np.array_equal(epoch1[1], other[1])


def test_a_mix_without_seed_parameter_is_called_plainly(raw):
    ds, _, _ = raw
    calls = []

    def halve(images, labels):
        calls.append(1)
        return images / 2, labels

    x, _ = collect(pipeline.make_pipeline(ds, 7, training=True, mix=halve, one_hot=K, size=16))
    assert calls and x.max() <= 127.5


def test_albumentations_output_feeds_the_pipeline(raw):
    ds, _, labels = raw
    mapped = augment.albumentations_map(ds, augment.albumentations_transform(24, seed=1), 24)
    out = pipeline.make_pipeline(mapped, 4, size=24, one_hot=K)
    assert out.element_spec[0].shape.as_list() == [None, 24, 24, 3]
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in out]).argmax(1), labels)


def test_real_flowers_batches(monkeypatch):
    data = Path(os.environ.get("XAI_DATA_DIR", "/work/shared/data"))
    if not (data / "flowers102" / "flowers102_val.npz").exists():
        pytest.skip("no local Flowers102 copy (set XAI_DATA_DIR)")
    monkeypatch.setenv("XAI_DATA_DIR", str(data))
    from helpers.data import load_flowers102

    ds, info = load_flowers102("validation", n=6)
    x, y = collect(pipeline.make_pipeline(ds, 4, size=64, one_hot=len(info.class_names)))
    assert x.shape == (6, 64, 64, 3) and y.shape == (6, 102)
    assert x.min() >= 0 and x.max() <= 255 and x.std() > 10
