"""The tf.data input pipeline of the Keras track. Lesson: ``10_flowers102_datos_y_pipeline.ipynb``.

Per image: decode (done by :func:`helpers.data.load_flowers102`) and :func:`resize` to a square
uint8 image; per batch: cast to float32, augment, mix. Pixels stay raw in [0, 255] all the way:
every model of :mod:`helpers.keras.models` applies its own backbone's preprocessing inside.
Images are kept uint8 until batching so that ``cache()`` and the shuffle buffer hold a quarter
of the bytes; every batch that reaches a model is float32 in [0, 255], in training and
validation alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
Mix = Callable[..., tuple[tf.Tensor, tf.Tensor]]


def resize(image: tf.Tensor, label: tf.Tensor, size: int = 224) -> tuple[tf.Tensor, tf.Tensor]:
    """``image`` squashed to size x size (bilinear, aspect ratio not kept), rounded to uint8."""
    resized = tf.image.resize(image, (size, size), method="bilinear")
    return tf.saturate_cast(tf.round(resized), tf.uint8), label


def make_pipeline(ds: tf.data.Dataset, batch_size: int, training: bool = False,
                  augment: Callable | None = None, mix: Mix | None = None,
                  one_hot: int | None = None, size: int | None = 224, shuffle_buffer: int = 1024,
                  seed: int = 0, cache: bool = False) -> tf.data.Dataset:
    """Batches ``(float32 images [B, size, size, 3] in [0, 255], labels)`` from (image, label).

    Order: resize -> [cache] -> shuffle (training only, reshuffled every epoch, seeded) ->
    batch -> float32 -> one-hot labels (if ``one_hot=num_classes``) -> ``augment(x,
    training=True)`` (training only; e.g. :func:`helpers.keras.augment.augmentation_block`) ->
    ``mix(x, y)`` (training only; e.g. :func:`helpers.keras.augment.mixup`) -> prefetch.

    ``size=None``: the images are already resized (and cached, if wanted).
    Labels are int64 [B], or one-hot float32 [B, K] with ``one_hot=K``. A ``mix`` needs one-hot
    labels, so it requires ``one_hot``: pass the same ``one_hot`` to the validation pipeline and
    both can use ``CategoricalCrossentropy``. If ``mix`` has a ``seed`` parameter it gets a
    different seed per batch, reproducible from ``seed`` (a new sequence every epoch).
    """
    if mix is not None and one_hot is None:
        raise ValueError("mix produces soft labels: pass one_hot=num_classes (and the same "
                         "one_hot to the validation pipeline, so both use one loss)")
    if size is not None:
        ds = ds.map(lambda x, y: resize(x, y, size), num_parallel_calls=AUTOTUNE)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(_to_float, num_parallel_calls=AUTOTUNE)
    if one_hot is not None:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, one_hot, dtype=tf.float32)))
    if training and augment is not None:
        # sequential: Keras random layers draw from a stateful generator, which parallel calls
        # would consume in thread order (the same seed, other images on every run)
        ds = ds.map(lambda x, y: (augment(x, training=True), y))
    if training and mix is not None:
        ds = _apply_mix(ds, mix, seed)
    return ds.prefetch(AUTOTUNE)


def _to_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32), labels


def _apply_mix(ds: tf.data.Dataset, mix: Mix, seed: int) -> tf.data.Dataset:
    """``mix`` on every batch, with a per-batch stateless seed [2] when it takes ``seed``."""
    if "seed" not in inspect.signature(mix).parameters:
        return ds.map(mix, num_parallel_calls=AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def seeded(batch: tuple[tf.Tensor, tf.Tensor], s: tf.Tensor):
        return mix(*batch, seed=s)

    return tf.data.Dataset.zip((ds, seeds)).map(seeded, num_parallel_calls=AUTOTUNE)
