"""Faithfulness of explanation maps: deletion and insertion curves, reference maps (numpy only).

Lessons: ``07_comparativa.ipynb`` (PyTorch) and ``14_grad_cam_e_integrated_gradients.ipynb``
(Keras). Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models"
(BMVC 2018): :func:`deletion_curve`, :func:`insertion_curve` and :func:`auc`, with the reference
maps :func:`random_map` and :func:`centered_gaussian_map`. A model enters only through a callback
``score_fn`` built by a thin adapter (:func:`helpers.torch.metrics.probability_fn`,
:func:`helpers.keras.metrics.probability_fn`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.core.maps import flatten_maps

ScoreFn = Callable[[np.ndarray, np.ndarray], Any]
DEFAULT_STEPS = 32
DEFAULT_BATCH_SIZE = 32  # perturbed images per call of score_fn


def random_map(shape: tuple[int, ...], seed: int | None = 0) -> np.ndarray:
    """Uniform noise in [0, 1) of ``shape`` (e.g. (N, H, W)): the "no information" reference.

    Not a floor every explanation clears: deleting scattered pixels of a small image (32x32)
    destroys it for any class, so a random order can win *deletion*, while a map that removes
    one compact region at a time lets the rest of the object still vote. Read it next to
    insertion and the centred Gaussian (``07_comparativa.ipynb``).
    """
    return np.random.default_rng(seed).random(shape)


def centered_gaussian_map(h: int, w: int, sigma: float | None = None) -> np.ndarray:
    """A map [H, W] peaking at the image centre: ``exp(-d^2 / (2 sigma^2))``.

    The "centre bias" reference: objects tend to sit in the middle of photos, so a map that
    knows nothing about the image but favours the centre is a stronger baseline than noise.
    ``sigma`` defaults to ``min(h, w) / 4`` pixels. Broadcast it to [N, H, W] as needed (the
    curve functions accept an [H, W] map for all images).
    """
    sigma = min(h, w) / 4 if sigma is None else sigma
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    rows = np.arange(h) - (h - 1) / 2
    cols = np.arange(w) - (w - 1) / 2
    return np.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * sigma**2))


def channel_axis(images_shape: tuple[int, ...], map_shape: tuple[int, ...],
                 channels_last: bool | None = None) -> int:
    """Axis of the channels in images [N,H,W,C] (3) or [N,C,H,W] (1).

    ``channels_last`` decides when given; otherwise it is inferred by matching the map's last two
    dimensions (H, W) against the images' shape, and ambiguous shapes raise ValueError.
    """
    if len(images_shape) != 4:
        raise ValueError(f"expected images [N,H,W,C] or [N,C,H,W], got shape {images_shape}")
    hw = tuple(map_shape[-2:])
    last, first = tuple(images_shape[1:3]) == hw, tuple(images_shape[2:4]) == hw
    if channels_last is None:
        if last == first:
            raise ValueError(f"cannot tell the layout of images {images_shape} from maps "
                             f"{map_shape}: pass channels_last=True or False")
        channels_last = last
    if not (last if channels_last else first):
        layout = "[N,H,W,C]" if channels_last else "[N,C,H,W]"
        raise ValueError(f"maps {map_shape} do not match images {images_shape} read as {layout}")
    return 3 if channels_last else 1


def pixel_order(maps) -> np.ndarray:
    """Pixel indices [N, H*W] (row-major) from the most to the least important.

    Importance is the map's value (pass ``abs`` of signed maps to rank magnitudes). Ties keep
    the row-major order (top-left first): a stable sort, so the result is deterministic.
    """
    flat = flatten_maps(maps)
    if np.isnan(flat).any():
        raise ValueError("maps contain NaN: pixels cannot be ranked")
    return np.argsort(-flat, axis=1, kind="stable")


def step_counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels perturbed after each step [steps + 1]: ``floor(k * pixels / steps)``, k = 0..steps."""
    if not 1 <= steps <= pixels:
        raise ValueError(f"steps must be between 1 and the number of pixels ({pixels}), "
                         f"got {steps}")
    return np.arange(steps + 1) * pixels // steps


def _perturbation_curve(score_fn: ScoreFn, images, maps, steps: int, baseline,
                        batch_size: int | None, channels_last: bool | None,
                        insert: bool) -> np.ndarray:
    x = np.asarray(images)
    x = x if x.dtype.kind == "f" else x.astype(np.float32)
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim == 2:
        m = np.broadcast_to(m, (x.shape[0], *m.shape))
    if m.ndim != 3 or m.shape[0] != x.shape[0]:
        raise ValueError(f"expected maps [N,H,W] (or one [H,W]) for {x.shape[0]} images, got "
                         f"{np.shape(maps)}; use as_heatmaps for channel maps [N,C,H,W]")
    axis = channel_axis(x.shape, m.shape, channels_last)
    try:
        ref = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    except ValueError as err:
        raise ValueError(f"baseline of shape {np.shape(baseline)} does not broadcast to the "
                         f"images {x.shape}") from err
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, (h, w) = x.shape[0], m.shape[1:]
    counts = step_counts(h * w, steps)
    rank = np.empty((n, h * w), dtype=np.int64)  # rank[i, p]: position of pixel p in the order
    np.put_along_axis(rank, pixel_order(m), np.arange(h * w)[None], axis=1)
    start_from, take = (ref, x) if insert else (x, ref)
    total = n * (steps + 1)
    scores = np.empty(total, dtype=np.float64)
    for lo in range(0, total, batch_size):
        idx = np.arange(lo, min(lo + batch_size, total))
        img, k = idx // (steps + 1), idx % (steps + 1)
        mask = (rank[img] < counts[k][:, None]).reshape(-1, h, w)
        mask = np.expand_dims(mask, axis)  # the same mask for every channel
        batch = np.where(mask, take[img], start_from[img])
        out = np.asarray(score_fn(batch, img), dtype=np.float64).reshape(-1)
        if out.shape != (len(idx),):
            raise ValueError(f"score_fn must return one score per image: expected {len(idx)}, "
                             f"got shape {out.shape}")
        scores[idx] = out
    return scores.reshape(n, steps + 1)


def deletion_curve(score_fn: ScoreFn, images, maps, steps: int = DEFAULT_STEPS, baseline=0.0,
                   batch_size: int | None = None,
                   channels_last: bool | None = None) -> np.ndarray:
    """Deletion curves [N, steps + 1] (Petsiuk et al., RISE, 2018): lower area = better map.

    Point k is the score of the image with its ``floor(k * H*W / steps)`` most important pixels
    (by the map, all channels at once, ties in row-major order: :func:`pixel_order`) replaced by
    ``baseline``; the x axis is the fraction ``k / steps`` of pixels removed (0 .. 1). A faithful
    map makes the score collapse early.

    * ``score_fn(batch, rows) -> [B]``: the probability of the target class for each image of a
      batch laid out like ``images``; ``rows[b]`` is the index (0..N-1) of the original image that
      row ``b`` comes from, for per-image targets. Built by :func:`helpers.torch.metrics.
      probability_fn` or :func:`helpers.keras.metrics.probability_fn`. It is called on chunks of
      ``batch_size`` (default 32) of the N x (steps + 1) perturbed images, rows grouped by image.
    * ``images``: [N,H,W,C] or [N,C,H,W], in whatever space ``score_fn`` expects;
      ``channels_last`` gives the layout, or None to infer it from the maps' shape.
    * ``maps``: [N,H,W] (or one [H,W] for all images); higher = more important.
    * ``baseline``: what removed pixels become: a scalar or an array broadcastable to
      ``images`` (black, gray, a blurred copy: :func:`helpers.core.filters.gaussian_blur`).
    """
    return _perturbation_curve(score_fn, images, maps, steps, baseline, batch_size,
                               channels_last, insert=False)


def insertion_curve(score_fn: ScoreFn, images, maps, steps: int = DEFAULT_STEPS, baseline=0.0,
                    batch_size: int | None = None,
                    channels_last: bool | None = None) -> np.ndarray:
    """Insertion curves [N, steps + 1] (Petsiuk et al., RISE, 2018): higher area = better map.

    The reverse of :func:`deletion_curve` (same arguments): start from ``baseline`` (RISE uses a
    blurred copy of the image, :func:`helpers.core.filters.gaussian_blur`) and copy back the
    ``floor(k * H*W / steps)`` most important pixels of the image. A faithful map makes the
    score rise early.
    """
    return _perturbation_curve(score_fn, images, maps, steps, baseline, batch_size,
                               channels_last, insert=True)


def auc(curve) -> np.ndarray:
    """Area under curves [..., K] sampled at K equally spaced points of [0, 1] (trapezoids).

    One value per curve: a [N, steps + 1] array gives [N], a single curve gives a scalar array.
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim == 0 or c.shape[-1] < 2:
        raise ValueError(f"a curve needs at least 2 points, got shape {c.shape}")
    return (c[..., :-1] + c[..., 1:]).sum(axis=-1) / (2 * (c.shape[-1] - 1))


@dataclass(frozen=True, eq=False)  # arrays: no elementwise == between results
class DeletionInsertion:
    """Deletion and insertion curves [N, steps + 1] of the same maps, with their areas."""

    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def fractions(self) -> np.ndarray:
        """The x axis: fraction of pixels removed / inserted at each point [steps + 1]."""
        return np.linspace(0.0, 1.0, self.deletion.shape[-1])

    @property
    def deletion_auc(self) -> np.ndarray:
        """Area under each deletion curve [N] (lower = better)."""
        return auc(self.deletion)

    @property
    def insertion_auc(self) -> np.ndarray:
        """Area under each insertion curve [N] (higher = better)."""
        return auc(self.insertion)


def deletion_insertion(score_fn: ScoreFn, images, maps, steps: int = DEFAULT_STEPS,
                       baseline=0.0, batch_size: int | None = None,
                       channels_last: bool | None = None) -> DeletionInsertion:
    """Both :func:`deletion_curve` and :func:`insertion_curve` with the same ``baseline``."""
    args = (score_fn, images, maps, steps, baseline, batch_size, channels_last)
    return DeletionInsertion(deletion_curve(*args), insertion_curve(*args))
