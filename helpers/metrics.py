"""Framework-neutral measures of explanation maps (numpy in, numpy out).

Lesson: ``07_comparativa.ipynb``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


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
