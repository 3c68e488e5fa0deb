"""Data augmentation for the Keras track: Keras layers, Albumentations, MixUp and CutMix.

Lessons: ``11_data_augmentation.ipynb`` (:func:`augmentation_block`,
:func:`albumentations_transform`, :func:`albumentations_map`) and ``12_mixup_y_cutmix.ipynb``
(:func:`mixup`, :func:`cutmix`). Images are raw pixels in [0, 255] everywhere; the models
normalize them themselves (see :mod:`helpers.keras.models`).

Randomness in :func:`mixup` and :func:`cutmix` comes from stateless TF ops: a ``seed`` (an int or
a shape-[2] integer tensor) gives the same result every time; ``seed=None`` draws a fresh seed
from TF's global generator. :func:`helpers.keras.pipeline.make_pipeline` passes a different,
reproducible seed to every batch.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# Keras RandomRotation's factor is a fraction of a full turn: 0.1 -> +-36 degrees.
ROTATION = 0.1
ZOOM = 0.1  # +-10 % zoom
SHIFT = 0.1  # +-10 % of the side
BRIGHTNESS = 0.2  # +-20 % of the value range (255)
CONTRAST = 0.2  # contrast factor in [0.8, 1.2]


def augmentation_block(seed: int = 0, name: str = "augmentation") -> keras.Sequential:
    """Keras preprocessing layers for raw [0, 255] images; they only act when ``training=True``.

    Use it inside a model (``model.fit`` sets ``training=True``, ``predict``/``evaluate`` do not)
    or in a pipeline as ``block(images, training=True)``. Output is float32 in [0, 255].
    """
    layers = keras.layers
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        RandomAffine(ROTATION, ZOOM, SHIFT, seed=seed + 1),
        layers.RandomBrightness(BRIGHTNESS, value_range=(0, 255), seed=seed + 4),
        layers.RandomContrast(CONTRAST, value_range=(0, 255), seed=seed + 5),
    ], name=name)


def affine_transform_matrix(turns, scale, tx, ty, height, width):
    """Rows ``[a0, a1, a2, b0, b1, b2, 0, 0]`` for ``keras.ops.image.affine_transform``: rotate
    by ``turns`` (fractions of a full turn, the sign of ``RandomRotation``), zoom by ``scale``
    (> 1 zooms out, as ``RandomZoom``), then shift by (``tx``, ``ty``) pixels (as
    ``RandomTranslation``); one row per image. Output (x, y) reads input A (x - t - c) + c."""
    angle = turns * 2 * np.pi
    cos, sin = scale * keras.ops.cos(angle), scale * keras.ops.sin(angle)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    x0, y0 = cx + tx, cy + ty
    zero = keras.ops.zeros_like(cos)
    return keras.ops.stack([cos, -sin, cx - cos * x0 + sin * y0,
                            sin, cos, cy - sin * x0 - cos * y0, zero, zero], axis=1)


class RandomAffine(keras.layers.Layer):
    """Keras' ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` in one resample.

    Draws, per image and like those three layers with factors ``rotation`` (a fraction of a full
    turn), ``zoom`` and ``shift`` (fractions of the side), an angle, a zoom factor (> 1 zooms out,
    aspect kept) and a shift, composes them into one affine map (rotate, then zoom, then shift,
    the layers' order) and interpolates once: three layers resample (and blur) three times and
    cost three times as much. Acts only with ``training=True``; float32 out.
    """

    def __init__(self, rotation: float, zoom: float, shift: float, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift = rotation, zoom, shift
        self.fill_mode, self.interpolation, self.seed = fill_mode, interpolation, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = True):
        images = keras.ops.cast(images, "float32")
        if not training:
            return images
        shape = keras.ops.shape(images)
        n, h, w = shape[0], keras.ops.cast(shape[1], "float32"), keras.ops.cast(shape[2], "float32")

        def draw(limit):
            return keras.random.uniform((n,), -limit, limit, seed=self.seed_generator)

        transform = affine_transform_matrix(draw(self.rotation), 1 + draw(self.zoom),
                                            draw(self.shift) * w, draw(self.shift) * h, h, w)
        return keras.ops.image.affine_transform(images, transform, self.interpolation,
                                                self.fill_mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom,
                "shift": self.shift, "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "seed": self.seed}


def import_albumentations():
    """``albumentations``, imported without its PyTorch extras (so TensorFlow stays alone).

    ``import albumentations`` also imports ``albumentations.pytorch`` and so torch, when torch is
    installed. Blocking that submodule during the import keeps torch out of a Keras process; it
    is unblocked right after, so ``import albumentations.pytorch`` still works later.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import
    if "albumentations" in sys.modules:
        return sys.modules["albumentations"]
    block = "albumentations.pytorch" not in sys.modules and "torch" not in sys.modules
    if block:
        sys.modules["albumentations.pytorch"] = None  # type: ignore[assignment]  # ImportError
    try:
        import albumentations
    finally:
        if block and sys.modules.get("albumentations.pytorch", 0) is None:
            del sys.modules["albumentations.pytorch"]
    return albumentations


def albumentations_transform(size: int = 224, seed: int = 0):
    """An Albumentations ``Compose`` like :func:`augmentation_block`, ending at size x size.

    Resize first (cheaper), then flip, rotation/zoom/shift in one ``Affine`` with reflected
    borders, and brightness/contrast. ``seed`` makes the sequence of draws reproducible.
    """
    A = import_albumentations()
    reflect = 4  # cv2.BORDER_REFLECT_101, Keras' "reflect"
    return A.Compose([
        A.Resize(size, size),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-360 * ROTATION, 360 * ROTATION), scale=(1 - ZOOM, 1 + ZOOM),
                 translate_percent=(-SHIFT, SHIFT), border_mode=reflect, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=BRIGHTNESS, contrast_limit=CONTRAST, p=1.0),
    ], seed=seed)


def albumentations_map(ds: tf.data.Dataset, transform: Any, size: int = 224,
                       deterministic: bool = True) -> tf.data.Dataset:
    """Apply an Albumentations ``transform`` to every (uint8 image, label) of ``ds``.

    Runs the transform with ``tf.numpy_function`` (plain Python, outside the TF graph), then
    restores the static shape [size, size, 3] uint8 that TF loses on the way. Use it before
    ``batch``. ``deterministic=True`` maps one image at a time, so a seeded transform gives the
    same images on every run; ``False`` maps in parallel (faster, order of draws varies).
    """
    def apply(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(transform(image=image)["image"], dtype=np.uint8)

    def per_image(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = tf.numpy_function(apply, [image], tf.uint8, stateful=True)
        return tf.ensure_shape(out, [size, size, 3]), label

    spec = ds.element_spec[0] if isinstance(ds.element_spec, tuple) else ds.element_spec
    if spec.dtype != tf.uint8:
        raise ValueError(f"albumentations_map expects uint8 images in [0, 255] (before batch), "
                         f"got {spec.dtype.name}: cast with tf.saturate_cast(x, tf.uint8) first, "
                         "or the transform would return saturated 0/255 pixels")
    calls = None if deterministic else tf.data.AUTOTUNE
    return ds.map(per_image, num_parallel_calls=calls)


def mixup(images: tf.Tensor, labels: tf.Tensor, alpha: float = 0.2,
          num_classes: int | None = None, seed: Any = None,
          per_sample: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """MixUp (Zhang et al., 2018) of a batch: ``lam * x + (1 - lam) * x[perm]``, same for labels.

    ``perm`` is a random permutation of the batch (an image may be paired with itself);
    ``lam ~ Beta(alpha, alpha)``, drawn as ``g1 / (g1 + g2)`` with ``g1, g2 ~ Gamma(alpha)``.
    ``per_sample=True`` (default, like ``keras.layers.MixUp``) draws one ``lam`` per image;
    ``False`` one per batch, as in the paper's code. Labels: integer [N] (needs
    ``num_classes``) or one-hot/soft [N, K] (Keras' layer only takes the latter); out: soft
    float32 [N, K]. Images out: float32.
    Works eagerly and inside ``dataset.batch(...).map(...)``.
    """
    images = tf.cast(images, tf.float32)
    labels = _same_batch(images, soft_labels(labels, num_classes))
    s_perm, s_lam = tf.unstack(_split_seed(seed, 2))
    n = tf.shape(images)[0]
    perm = _permutation(n, s_perm)
    lam = beta_sample([n] if per_sample else [1], alpha, s_lam)
    lam_x, lam_y = tf.reshape(lam, [-1, 1, 1, 1]), tf.reshape(lam, [-1, 1])
    mixed = lam_x * images + (1.0 - lam_x) * tf.gather(images, perm)
    return mixed, lam_y * labels + (1.0 - lam_y) * tf.gather(labels, perm)


def cutmix(images: tf.Tensor, labels: tf.Tensor, alpha: float = 1.0,
           num_classes: int | None = None, seed: Any = None,
           per_sample: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """CutMix (Yun et al., 2019): paste a box of a partner image; labels weighted by pixel area.

    As in the paper's code: ``lam ~ Beta(alpha, alpha)``, box side ``sqrt(1 - lam) * side``
    (rounded down), centre uniform over the pixels, box clipped to the image. ``lam`` is then
    recomputed from the clipped box, so the partner's label weight equals the fraction of pasted
    pixels exactly. ``keras.layers.CutMix`` (Keras 3.15) differs: its box always lies inside the
    image (no clipping), its labels are weighted by the box's real-valued area, which differs
    from the pixels it pastes by up to a row plus a column (see ``tests/test_augment.py``), and
    its ``factor`` is not ``alpha``: each batch draws ``alpha ~ U(0, factor)``, then
    ``lam ~ Beta(alpha, alpha)``. ``per_sample``, labels and seeds as in :func:`mixup`.
    Images out: float32.
    """
    images = tf.cast(images, tf.float32)
    labels = _same_batch(images, soft_labels(labels, num_classes))
    s_perm, s_lam, s_y, s_x = tf.unstack(_split_seed(seed, 4))
    n, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    perm = _permutation(n, s_perm)
    m = n if per_sample else 1
    ratio = tf.sqrt(1.0 - beta_sample([m], alpha, s_lam))
    y0, y1 = _box_bounds(h, ratio, m, s_y)
    x0, x1 = _box_bounds(w, ratio, m, s_x)
    rows, cols = tf.range(h)[None, :, None], tf.range(w)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < y1[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < x1[:, None, None]))
    mixed = tf.where(inside[..., None], tf.gather(images, perm), images)
    area = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    lam = tf.reshape(1.0 - area, [-1, 1])  # exact fraction of pixels kept from the image
    return mixed, lam * labels + (1.0 - lam) * tf.gather(labels, perm)


def _box_bounds(side: tf.Tensor, ratio: tf.Tensor, m: tf.Tensor,
                seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """[start, stop) of a box of ``floor(ratio * side)`` pixels around a uniform centre, clipped."""
    cut = tf.cast(tf.floor(ratio * tf.cast(side, tf.float32)), tf.int32)
    centre = tf.random.stateless_uniform([m], seed, minval=0, maxval=side, dtype=tf.int32)
    start = tf.clip_by_value(centre - cut // 2, 0, side)
    return start, tf.clip_by_value(centre + cut // 2, 0, side)


def soft_labels(labels: tf.Tensor, num_classes: int | None = None) -> tf.Tensor:
    """Labels as soft float32 [N, K]: class indices [N] (or [N, 1]) become one-hot, one-hot or
    soft labels [N, K] (integer or float) are cast.

    Class indices need ``num_classes`` and must lie in ``[0, num_classes)`` (checked now when
    eager, at run time inside a ``tf.data`` map); an index outside would give an all-zero row.
    """
    labels = tf.convert_to_tensor(labels)
    rank, last = labels.shape.rank, labels.shape[-1] if labels.shape.rank else None
    if rank == 2 and last != 1:
        if num_classes is not None and last not in (None, num_classes):
            raise ValueError(f"labels have {last} classes, num_classes={num_classes}")
        return tf.cast(labels, tf.float32)
    if not labels.dtype.is_integer:
        raise ValueError(f"class-index labels must be integers, got {labels.dtype} with shape "
                         f"{labels.shape}; soft labels must be [N, K]")
    if num_classes is None:
        raise ValueError("integer labels need num_classes to become one-hot labels")
    index = tf.reshape(labels, [-1])
    message = f"class-index labels must lie in [0, {num_classes}) (num_classes={num_classes})"
    if tf.executing_eagerly():
        bad = np.asarray(index)[(np.asarray(index) < 0) | (np.asarray(index) >= num_classes)]
        if bad.size:
            raise ValueError(f"{message}, got {sorted(set(bad.tolist()))}")
    else:
        with tf.control_dependencies([
                tf.debugging.assert_non_negative(index, message=message),
                tf.debugging.assert_less(index, tf.cast(num_classes, index.dtype),
                                         message=message)]):
            index = tf.identity(index)
    return tf.one_hot(index, num_classes, dtype=tf.float32)


def _same_batch(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """``labels`` after checking that they have one row per image (statically when known)."""
    n_images, n_labels = images.shape[0], labels.shape[0]
    if n_images is not None and n_labels is not None and n_images != n_labels:
        raise ValueError(f"{n_images} images but {n_labels} labels: pass one label per image")
    with tf.control_dependencies([tf.debugging.assert_equal(
            tf.shape(images)[0], tf.shape(labels)[0],
            message="the batch has a different number of images and labels")]):
        return tf.identity(labels)


def beta_sample(shape: list, alpha: float, seed: tf.Tensor) -> tf.Tensor:
    """``Beta(alpha, alpha)`` float32 samples as ``g1 / (g1 + g2)``, ``g ~ Gamma(alpha)``.

    Gammas are drawn in float64: with small ``alpha`` both can underflow to 0 in float32
    (then the result is 0.5 instead of NaN).
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    g1 = tf.random.stateless_gamma(shape, s1, alpha=alpha, dtype=tf.float64)
    g2 = tf.random.stateless_gamma(shape, s2, alpha=alpha, dtype=tf.float64)
    total = g1 + g2
    ok = total > 0
    half = tf.fill(tf.shape(total), tf.constant(0.5, tf.float64))
    lam = tf.where(ok, g1 / tf.where(ok, total, tf.ones_like(total)), half)
    return tf.cast(lam, tf.float32)


def _permutation(n: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A random permutation of ``range(n)`` from a stateless seed."""
    return tf.argsort(tf.random.stateless_uniform([n], seed))


def _split_seed(seed: Any, num: int) -> tf.Tensor:
    """``num`` independent stateless seeds [num, 2] from an int, a [2] tensor or None (random)."""
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    elif isinstance(seed, int | np.integer):
        seed = tf.constant([int(seed), 0], tf.int64)
    seed = tf.cast(tf.reshape(seed, [2]), tf.int64)
    return tf.random.experimental.stateless_split(seed, num)
