"""Explanation maps as numbers: channel reduction, display scaling and simple statistics.

Lessons: ``07_comparativa.ipynb``, ``08_atajos_y_explicaciones.ipynb`` and
``15_analisis_de_errores_y_reflexion.ipynb``. Numpy only;
PyTorch maps are [N,C,H,W] (channels first), Keras maps [N,H,W,C] (``channels_last=True``).
"""

from __future__ import annotations

import numpy as np


def flatten_maps(maps) -> np.ndarray:
    """A batch of maps [N, ...] as float64 rows [N, D]."""
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"expected a batch of maps [N,...], got shape {arr.shape}")
    return arr.reshape(arr.shape[0], -1)


def as_heatmaps(maps, channels_last: bool = False) -> np.ndarray:
    """Maps as [N,H,W]: channel attributions [N,C,H,W] (or [N,H,W,C]) become the sum of |a|."""
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 4:
        return np.abs(arr).sum(axis=-1 if channels_last else 1)
    if arr.ndim == 3:
        return arr
    layout = "[N,H,W,C]" if channels_last else "[N,C,H,W]"
    raise ValueError(f"expected maps [N,H,W] or {layout}, got shape {arr.shape}")


def scale01(maps) -> np.ndarray:
    """Each map [N,H,W] rescaled to [0, 1] by its own min and max; a constant map becomes 0."""
    arr = np.asarray(maps, dtype=np.float64)
    lo = arr.min(axis=(1, 2), keepdims=True)
    span = arr.max(axis=(1, 2), keepdims=True) - lo
    return np.divide(arr - lo, span, out=np.zeros_like(arr), where=span > 0)


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


def mass_inside(maps, masks) -> np.ndarray:
    """Per map [N, H, W]: share of its absolute mass inside the boolean ``masks`` [N, H, W].

    A map that ignores the region scores its area fraction on average (random map); an all-zero
    map gives NaN. Signed maps count by magnitude.
    """
    m, masks = np.abs(np.asarray(maps, dtype=np.float64)), np.asarray(masks, bool)
    if m.shape != masks.shape:
        raise ValueError(f"maps {m.shape} and masks {masks.shape} must have the same shape")
    total = m.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (m * masks).sum(axis=(1, 2)) / total, np.nan)


def pointing_game(maps, masks, tolerance: int = 0) -> np.ndarray:
    """Per map: whether its largest absolute value falls inside the mask (Zhang et al., 2016).

    ``tolerance`` grows each mask by that many pixels in every direction (a square neighbourhood),
    as the original game accepts hits near the object. An all-zero map is a miss.
    """
    m, masks = np.abs(np.asarray(maps, dtype=np.float64)), np.asarray(masks, bool)
    if m.shape != masks.shape:
        raise ValueError(f"maps {m.shape} and masks {masks.shape} must have the same shape")
    grown = masks.copy()
    for dr in range(-tolerance, tolerance + 1):
        for dc in range(-tolerance, tolerance + 1):
            grown |= _shifted(masks, dr, dc)
    peak = m.reshape(len(m), -1).argmax(axis=1)
    hit = grown.reshape(len(m), -1)[np.arange(len(m)), peak]
    return hit & (m.reshape(len(m), -1).max(axis=1) > 0)


def _shifted(masks: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``masks`` [N, H, W] moved by (dr, dc) pixels, filled with False."""
    out = np.zeros_like(masks)
    h, w = masks.shape[1:]
    out[:, max(dr, 0):h + min(dr, 0), max(dc, 0):w + min(dc, 0)] = \
        masks[:, max(-dr, 0):h + min(-dr, 0), max(-dc, 0):w + min(-dc, 0)]
    return out
