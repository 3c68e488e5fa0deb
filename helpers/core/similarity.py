"""Agreement between two explanation maps: Spearman rank correlation and SSIM (numpy only).

Lessons: ``07_comparativa.ipynb`` and ``14_grad_cam_e_integrated_gradients.ipynb``. Both follow
Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018), where they compare a map with
the map of a randomized model.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import rankdata

from helpers.core.maps import flatten_maps, scale01


def spearman(a, b, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation between paired maps, one value per image [N].

    With ``absolute=True`` (as in Adebayo et al., 2018) the magnitudes are compared, so a map
    and its sign-flipped copy count as identical. Constant maps give NaN (no ranking exists).
    """
    a, b = flatten_maps(a), flatten_maps(b)
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


SSIM_SIGMA = 1.5  # Wang et al. (2004): Gaussian window, sigma 1.5 pixels ...
SSIM_TRUNCATE = 3.5  # ... cut at 3.5 sigma: radius 5, an 11 x 11 window (as scikit-image)
SSIM_K1, SSIM_K2 = 0.01, 0.03  # stabilizing constants C = (K * data range)^2, data range 1


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
