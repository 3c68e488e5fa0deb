"""Framework-neutral measures of explanation maps (numpy in, numpy out).

Lessons: ``07_comparativa.ipynb`` (PyTorch) and ``14_grad_cam_e_integrated_gradients.ipynb``
(Keras). Nothing here imports PyTorch or TensorFlow: a model enters only through a callback
``score_fn`` built by a thin adapter (:mod:`helpers.torch_metrics`, :mod:`helpers.keras_metrics`).

* Agreement between two maps: :func:`spearman`, :func:`ssim` (Adebayo et al., "Sanity Checks
  for Saliency Maps", NeurIPS 2018).
* Faithfulness to the model: :func:`deletion_curve`, :func:`insertion_curve` and :func:`auc`
  (Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
  BMVC 2018), with the reference maps :func:`random_map` and :func:`centered_gaussian_map`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import correlate1d, gaussian_filter
from scipy.stats import rankdata

ScoreFn = Callable[[np.ndarray, np.ndarray], Any]
DEFAULT_STEPS = 32
DEFAULT_BATCH_SIZE = 32  # perturbed images per call of score_fn


def _flat(maps) -> np.ndarray:
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"expected a batch of maps [N,...], got shape {arr.shape}")
    return arr.reshape(arr.shape[0], -1)


def spearman(a, b, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation between paired maps, one value per image [N].

    With ``absolute=True`` (as in Adebayo et al., 2018) the magnitudes are compared, so a map
    and its sign-flipped copy count as identical. Constant maps give NaN (no ranking exists).
    """
    a, b = _flat(a), _flat(b)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    if absolute:
        a, b = np.abs(a), np.abs(b)
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    denom = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(1) / denom, np.nan)


def as_heatmaps(maps) -> np.ndarray:
    """Maps as [N,H,W]: channel attributions [N,C,H,W] become the sum of |a| over channels."""
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 4:
        return np.abs(arr).sum(axis=1)
    if arr.ndim == 3:
        return arr
    raise ValueError(f"expected maps [N,H,W] or [N,C,H,W], got shape {arr.shape}")


# --- SSIM ------------------------------------------------------------------------------------

SSIM_SIGMA = 1.5  # Wang et al. (2004): Gaussian window, sigma 1.5 pixels ...
SSIM_TRUNCATE = 3.5  # ... cut at 3.5 sigma: radius 5, an 11 x 11 window (as scikit-image)
SSIM_K1, SSIM_K2 = 0.01, 0.03  # stabilizing constants C = (K * data range)^2, data range 1


def scale01(maps) -> np.ndarray:
    """Each map [N,H,W] rescaled to [0, 1] by its own min and max; a constant map becomes 0."""
    arr = np.asarray(maps, dtype=np.float64)
    lo = arr.min(axis=(1, 2), keepdims=True)
    span = arr.max(axis=(1, 2), keepdims=True) - lo
    return np.divide(arr - lo, span, out=np.zeros_like(arr), where=span > 0)


def ssim(a, b, absolute: bool = True) -> np.ndarray:
    """Structural similarity between paired maps [N,H,W], one value per pair [N], in [-1, 1].

    As in Adebayo et al. (2018), each map is first scaled to [0, 1] by its own min and max (after
    ``abs`` when ``absolute=True``, the default, as for :func:`spearman`), so SSIM compares the
    *shape* of the maps, not their units. Then the SSIM of Wang et al. (2004) with data range 1:
    local means, variances and covariance under a Gaussian window (sigma 1.5, 11 x 11), per pixel

        ``(2 mu_a mu_b + C1) (2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1) (var_a + var_b + C2))``,

    ``C1 = 0.01^2``, ``C2 = 0.03^2``, averaged over all pixels. The window is reflected at the
    borders and the whole map is averaged (scikit-image instead drops a 5-pixel border), so maps
    of any size work. 1 = same structure; about 0 for unrelated maps; negative when one map is
    the other inverted.

    Constant maps (no structure, e.g. an all-zero Grad-CAM) are scaled to all zeros, never NaN:
    two constant maps give exactly 1; a constant map against a non-constant map ``b`` gives, per
    pixel, ``C1 C2 / ((mu_b^2 + C1)(var_b + C2))``: about 0 where ``b`` is bright or textured,
    but 1 where ``b`` is locally all zero. The mean is thus roughly the fraction of ``b`` that is
    empty (about 0 for a dense map, high for a sparse one), unlike :func:`spearman`'s NaN.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two batches of maps [N,H,W] of the same shape, got "
                         f"{a.shape} and {b.shape} (use as_heatmaps for [N,C,H,W])")
    if absolute:
        a, b = np.abs(a), np.abs(b)
    return ssim_map(scale01(a), scale01(b)).mean(axis=(1, 2))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM [N,H,W] of maps already in [0, 1] (the terms of :func:`ssim`)."""

    def local_mean(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=(0, SSIM_SIGMA, SSIM_SIGMA), mode="reflect",
                               truncate=SSIM_TRUNCATE)

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
            / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))


# --- Reference maps ---------------------------------------------------------------------------


def random_map(shape: tuple[int, ...], seed: int | None = 0) -> np.ndarray:
    """Uniform noise in [0, 1) of ``shape`` (e.g. (N, H, W)): the "no information" reference.

    Any explanation should beat it on deletion and insertion (Petsiuk et al., 2018).
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


# --- Deletion and insertion (Petsiuk et al., 2018) --------------------------------------------


def gaussian_blur(images, sigma: float | None = None,
                  channels_last: bool = True) -> np.ndarray:
    """Images [N,H,W,C] (or [N,C,H,W] with ``channels_last=False``) blurred per channel.

    The same separable Gaussian as the PyTorch explainers' blur (the ``"blur"`` baseline of
    Integrated Gradients, ``helpers/torch_explain/_integrated_gradients.py``): radius
    ``ceil(3 sigma)`` capped at ``min(H, W) - 1``, mirror padding (``d c b | a b c d | c b a``);
    ``sigma`` defaults to ``max(H, W) / 8`` pixels. RISE's insertion starts from such a blurred
    copy.
    """
    arr = np.asarray(images)
    arr = arr if arr.dtype.kind == "f" else arr.astype(np.float64)
    if arr.ndim != 4:
        raise ValueError(f"expected a batch of images [N,H,W,C] or [N,C,H,W], got {arr.shape}")
    axes = (1, 2) if channels_last else (2, 3)
    sigma = max(arr.shape[a] for a in axes) / 8 if sigma is None else sigma
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = max(1, min(int(np.ceil(3 * sigma)), min(arr.shape[a] for a in axes) - 1))
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    out = arr
    for axis in axes:
        out = correlate1d(out, kernel.astype(arr.dtype), axis=axis, mode="mirror")
    return out


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
    flat = _flat(maps)
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
      row ``b`` comes from, for per-image targets. Built by :func:`helpers.torch_metrics.
      probability_fn` or :func:`helpers.keras_metrics.probability_fn`. It is called on chunks of
      ``batch_size`` (default 32) of the N x (steps + 1) perturbed images, rows grouped by image.
    * ``images``: [N,H,W,C] or [N,C,H,W], in whatever space ``score_fn`` expects;
      ``channels_last`` gives the layout, or None to infer it from the maps' shape.
    * ``maps``: [N,H,W] (or one [H,W] for all images); higher = more important.
    * ``baseline``: what removed pixels become: a scalar or an array broadcastable to
      ``images`` (black, gray, a blurred copy: :func:`gaussian_blur`).
    """
    return _perturbation_curve(score_fn, images, maps, steps, baseline, batch_size,
                               channels_last, insert=False)


def insertion_curve(score_fn: ScoreFn, images, maps, steps: int = DEFAULT_STEPS, baseline=0.0,
                    batch_size: int | None = None,
                    channels_last: bool | None = None) -> np.ndarray:
    """Insertion curves [N, steps + 1] (Petsiuk et al., RISE, 2018): higher area = better map.

    The reverse of :func:`deletion_curve` (same arguments): start from ``baseline`` (RISE uses a
    blurred copy of the image, :func:`gaussian_blur`) and copy back the ``floor(k * H*W / steps)``
    most important pixels of the image. A faithful map makes the score rise early.
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


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]`` (int64 [K, K]) from integer labels and predictions."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class: ``cm[k, k] / sum_j cm[k, j]`` (NaN for a class without images)."""
    cm = np.asarray(cm, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(axis=1)


def most_confused(cm: np.ndarray, k: int = 10) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells as ``(true, predicted, count)``, count > 0 only.

    Ties are broken by (true, predicted) order, so the result is deterministic.
    """
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(flat, cm.shape),
                                                                 strict=True)]
    return [p for p in pairs if p[2] > 0]


def select_examples(probs: np.ndarray, labels: np.ndarray, n: int,
                    n_wrong: int | None = None) -> np.ndarray:
    """Indices of ``n`` images, ``n_wrong`` of them misclassified (default: half).

    Right ones are the most confident, wrong ones the most confidently wrong: the clearest
    cases to explain. Deterministic for given predictions.
    """
    n_wrong = n // 2 if n_wrong is None else n_wrong
    pred, conf = probs.argmax(1), probs.max(1)
    right = np.flatnonzero(pred == labels)
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:n_wrong]
    right = right[np.argsort(-conf[right], kind="stable")][:n - len(wrong)]
    return np.concatenate([right, wrong])


def center_mass_fraction(maps, area: float = 0.25) -> np.ndarray:
    """Per map [N, H, W]: share of its (non-negative) mass inside a centred box of ``area``.

    The box has sides ``sqrt(area) * H`` and ``sqrt(area) * W``; a uniform map gives ``area``
    (up to rounding of the box). An all-zero map gives NaN.
    """
    m = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    _, h, w = m.shape
    bh, bw = round(np.sqrt(area) * h), round(np.sqrt(area) * w)
    top, left = (h - bh) // 2, (w - bw) // 2
    inner = m[:, top:top + bh, left:left + bw].sum(axis=(1, 2))
    total = m.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inner / total, np.nan)


def mass_area(maps, mass: float = 0.5) -> np.ndarray:
    """Per map: the smallest fraction of pixels that holds ``mass`` of its non-negative total.

    A uniform map gives ``mass``; a map concentrated on few pixels gives a small value. An
    all-zero map gives NaN.
    """
    m = np.clip(np.asarray(maps, dtype=np.float64), 0, None).reshape(len(maps), -1)
    ordered = -np.sort(-m, axis=1)
    total = ordered.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cumulative = ordered.cumsum(axis=1) / total
    needed = (cumulative < mass - 1e-12).sum(axis=1) + 1
    return np.where(total[:, 0] > 0, needed / m.shape[1], np.nan)


def paired_difference(correct_a, correct_b) -> tuple[float, float]:
    """Accuracy of A minus accuracy of B on the same images, and its standard error.

    ``correct_a``/``correct_b``: booleans [N], whether each model got each image right. The
    standard error is that of the mean of the per-image differences (a paired comparison: it
    is smaller than treating the two accuracies as independent when the models agree often).
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two boolean vectors of the same length >= 2, got {a.shape}, "
                         f"{b.shape}")
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
