"""Matplotlib figures shared by both tracks (framework-neutral: they take numpy arrays)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def to_display(image) -> np.ndarray:
    """An image as HxWxC (or HxW) float array in [0, 1], from uint8 or float, HWC or CHW."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return np.clip(arr.squeeze(), 0.0, 1.0)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8,
               title: str | None = None, size: float = 1.6, cmap: str | None = None):
    """Show images in a grid with one title each; returns the figure."""
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{n} images but {len(titles)} titles")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.3) * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_display(images[i]), cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
