"""Reference images in a PyTorch model's input space: IG baselines, deletion/insertion fills.

Lessons: ``06_integrated_gradients.ipynb`` and ``07_comparativa.ipynb``. The names a baseline
may have are checked once for both tracks (:func:`helpers.core.attribution.check_baseline`);
the blur uses the shared kernel (:func:`helpers.core.filters.gaussian_taps`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.core.attribution import check_baseline
from helpers.core.filters import default_sigma, gaussian_taps
from helpers.core.validate import require_finite
from helpers.torch.normalization import Normalization

Baseline = str | Tensor | np.ndarray | None


def make_reference(baseline: Baseline, x: Tensor, normalization: Normalization,
                   seed: int | None = None) -> Tensor:
    """The reference image x', shaped like ``x`` [N,C,H,W], in the model's input space.

    ``None`` or ``"black"`` = pixel 0 and ``"gray"`` = pixel 0.5, both mapped through
    ``normalization`` (0 in a normalized space is the dataset's mean colour, not black);
    ``"blur"`` = ``x`` blurred by a Gaussian of sigma ``max(H, W) / 8`` pixels; ``"mean"`` = each
    image's mean colour; ``"noise"`` = uniform pixel noise in [0, 1] drawn with ``seed``; or a
    tensor / array broadcastable to ``x``, already in input space.
    """
    name = check_baseline(baseline)
    if name is None:
        ref = torch.as_tensor(baseline)
        try:
            ref = ref.to(device=x.device, dtype=x.dtype).expand_as(x).clone()
        except RuntimeError as err:
            raise ValueError(f"baseline of shape {tuple(ref.shape)} does not broadcast to "
                             f"{tuple(x.shape)}") from err
        require_finite("baseline", int((~torch.isfinite(ref)).sum()), ref.numel())
        return ref
    if name in ("black", "gray"):
        return normalization.constant(x, 0.0 if name == "black" else 0.5)
    if name == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if name == "blur":
        return gaussian_blur(x, sigma=default_sigma(*x.shape[2:]))
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    pixels = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    return normalization.normalize(pixels)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of a batch [N,C,H,W] with mirrored borders (the shared kernel)."""
    c, out = x.shape[1], x
    for axis, size in ((3, x.shape[3]), (2, x.shape[2])):
        taps = x.new_tensor(gaussian_taps(sigma, size))
        radius = (len(taps) - 1) // 2
        if radius == 0:
            continue
        shape = (c, 1, 1, -1) if axis == 3 else (c, 1, -1, 1)
        pad = (radius, radius, 0, 0) if axis == 3 else (0, 0, radius, radius)
        out = F.conv2d(F.pad(out, pad, mode="reflect"), taps.view(1, 1, *shape[2:])
                       .expand(*shape[:2], *shape[2:]).contiguous(), groups=c)
    return out
