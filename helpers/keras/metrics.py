"""Deletion and insertion curves (Petsiuk et al., RISE, 2018) for Keras classifiers.

Lesson: ``14_grad_cam_e_integrated_gradients.ipynb``. The same API as
:mod:`helpers.torch.metrics` for the models of :mod:`helpers.keras.models`: raw [0, 255] pixel
batches [N, H, W, C] in, logits out. A thin adapter over the numpy core
:mod:`helpers.core.quality`; the references are those of Integrated Gradients
(:func:`helpers.keras.explain.make_reference`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers.core import quality
from helpers.core.attribution import resolve_targets
from helpers.core.maps import as_heatmaps
from helpers.core.quality import DeletionInsertion
from helpers.keras.explain import Target, as_batch, make_reference, num_classes

Baseline = str | np.ndarray
ScoreFn = Callable[..., np.ndarray]


def probability_fn(model: keras.Model, target: int | Sequence[int] | np.ndarray,
                   device: str | None = None) -> ScoreFn:
    """``score(batch, rows=None) -> np.ndarray [B]``: softmax probability of the target class.

    ``batch``: raw-pixel images [B, H, W, C]. ``target``: one class for every image, or one class
    per original image, ``target[rows[b]]`` being the class of row ``b`` (``rows=None``: row b
    is image b). The model must output logits (as those of :mod:`helpers.keras.models`); it runs
    with ``training=False`` (Dropout off, BatchNorm on its moving statistics), on ``device``
    (e.g. ``"/CPU:0"``; default: TensorFlow's choice). This is the ``score_fn`` that
    :func:`helpers.core.quality.deletion_curve` expects.
    """
    if target is None:
        raise ValueError("probability_fn needs the target class(es): an int or one int per "
                         "image (the class predicted on the clean image, say)")
    single = isinstance(target, numbers.Integral) and not isinstance(target, bool | np.bool_)
    classes = int(target) if single else np.asarray(target).reshape(-1)
    k = num_classes(model)

    def score(batch, rows=None) -> np.ndarray:
        x = as_batch(batch)
        if isinstance(classes, int):
            t = resolve_targets(classes, x.shape[0], k)
        else:
            idx = np.arange(x.shape[0]) if rows is None else np.asarray(rows).reshape(-1)
            if len(idx) and idx.max() >= len(classes):
                raise ValueError(f"row index {idx.max()} but only {len(classes)} targets")
            t = resolve_targets(classes[idx], x.shape[0], k)
        if device is None:
            logits = model(x, training=False)
        else:
            with tf.device(device):
                logits = model(x, training=False)
        p = tf.nn.softmax(tf.cast(logits, tf.float64), axis=-1).numpy()
        return p[np.arange(len(t)), t]

    return score


def deletion_insertion(model: keras.Model, images, maps, target: Target = None,
                       steps: int = quality.DEFAULT_STEPS, baseline: Baseline = "blur",
                       batch_size: int | None = None) -> DeletionInsertion:
    """Deletion and insertion curves of ``maps`` for ``model`` on raw-pixel ``images`` [N,H,W,C].

    ``maps``: [N, H, W] (e.g. :func:`helpers.keras.explain.grad_cam`; higher = more important;
    one [H, W] map serves all images; IG attributions [N, H, W, C] become ``sum |a|`` over the
    last axis). ``target``: None (the class predicted on ``images``), an int, or one int per
    image. ``baseline``: ``"blur"`` (default), ``"black"``, ``"gray"``, ``"mean"``, ``"noise"``
    or an array (:func:`helpers.keras.explain.make_reference`). The N x (steps + 1) images of
    each curve run in chunks of ``batch_size`` (default 32).

    Returns :class:`helpers.core.quality.DeletionInsertion`: ``.deletion`` and ``.insertion``
    [N, steps + 1], ``.deletion_auc`` (lower = better) and ``.insertion_auc`` (higher = better)
    [N]. See :func:`helpers.core.quality.deletion_curve` for the details.
    """
    num_classes(model)
    x = as_batch(images).numpy()
    heat = maps if np.ndim(maps) == 2 else as_heatmaps(maps, channels_last=True)
    logits = np.asarray(model(x, training=False))
    t = resolve_targets(target, len(x), logits.shape[1])
    t = logits.argmax(axis=1) if t is None else t
    return quality.deletion_insertion(probability_fn(model, t), x, heat, steps,
                                      make_reference(baseline, x), batch_size,
                                      channels_last=True)
