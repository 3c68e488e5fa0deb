"""The Gaussian kernel behind every blur of the project (numpy only).

Lessons: ``06_integrated_gradients.ipynb`` (the ``"blur"`` baseline), ``07_comparativa.ipynb``
(insertion starts from a blurred copy) and ``13_entrenamiento_y_comparacion.ipynb`` (blur as a
perturbation). PyTorch (:func:`helpers.torch.explain.gaussian_blur`), TensorFlow
(:func:`helpers.keras.perturb.gaussian_blur`) and numpy (:func:`gaussian_blur`) all convolve
with :func:`gaussian_taps`, separably, with mirrored borders (``d c b | a b c d | c b a``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.ndimage import correlate1d


def default_sigma(height: int, width: int) -> float:
    """The blur of the ``"blur"`` baseline: ``max(H, W) / 8`` pixels (4 at 32x32)."""
    return max(height, width) / 8


def gaussian_taps(sigma: float, size: int) -> np.ndarray:
    """A 1-D Gaussian kernel (float64, sums to 1) for an axis of ``size`` pixels.

    Radius ``ceil(3 sigma)``, capped at ``size - 1`` so that mirrored padding stays inside the
    image; a 1-pixel axis gets the identity kernel ``[1.0]``.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) \
            or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r}")
    radius = max(0, min(math.ceil(3 * sigma), size - 1))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / taps.sum()


def gaussian_blur(images, sigma: float | None = None, channels_last: bool = True) -> np.ndarray:
    """Images [N,H,W,C] (or [N,C,H,W] with ``channels_last=False``) blurred per channel.

    ``sigma`` defaults to :func:`default_sigma`. Float images keep their dtype; others become
    float64.
    """
    arr = np.asarray(images)
    arr = arr if arr.dtype.kind == "f" else arr.astype(np.float64)
    if arr.ndim != 4:
        raise ValueError(f"expected a batch of images [N,H,W,C] or [N,C,H,W], got {arr.shape}")
    axes = (1, 2) if channels_last else (2, 3)
    sigma = default_sigma(*(arr.shape[a] for a in axes)) if sigma is None else sigma
    out = arr
    for axis in axes:
        taps = gaussian_taps(sigma, arr.shape[axis]).astype(arr.dtype)
        out = correlate1d(out, taps, axis=axis, mode="mirror")
    return out


def edge_map(images, channels_last: bool = True) -> np.ndarray:
    """Sobel gradient magnitude [N, H, W] of each image's channel mean: a map that looks only at
    the image (contrast, edges), never at a model. Lesson: ``08_atajos_y_explicaciones.ipynb``.
    """
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim != 4:
        raise ValueError(f"expected a batch of images [N,H,W,C] or [N,C,H,W], got {arr.shape}")
    gray = arr.mean(axis=3 if channels_last else 1)
    diff, smooth = np.array([-1.0, 0.0, 1.0]), np.array([1.0, 2.0, 1.0])

    def sobel(along: int, across: int) -> np.ndarray:  # per image: never mixes the batch axis
        out = correlate1d(gray, diff, axis=along, mode="mirror")
        return correlate1d(out, smooth, axis=across, mode="mirror")

    return np.hypot(sobel(1, 2), sobel(2, 1))

