"""Occlusion (Zeiler & Fergus, 2014). Lesson: ``05_oclusion.ipynb``.

A ``patch`` window slides with ``stride`` over the image; the window positions along an axis of
size S are ``range(0, S - patch + 1, stride)``, plus ``S - patch`` when the last one does not
reach the border, so every pixel is covered by at least one full window. Captum places
``ceil((S - patch) / stride) + 1`` windows at multiples of ``stride`` and crops the last one at
the border instead; both agree whenever ``(S - patch) % stride == 0`` (e.g. 32, 4, 2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from helpers.core.validate import batch_size_or, int_pair
from helpers.torch.explain.base import (
    Target,
    chunks,
    explaining,
    logits_of,
    pick,
    resolve_target,
    to_output,
)
from helpers.torch.normalization import Normalization

Fill = float | str | Tensor | None
DEFAULT_BATCH_SIZE = 32  # occluded images per forward (bench/bench_explainers.py compares sizes)


def occlusion(model: nn.Module, x: Tensor, target: Target = None, patch: int | tuple[int, int] = 4,
              stride: int | tuple[int, int] = 2, fill: Fill = None, batch_size: int | None = None,
              normalization: Normalization | None = None, score: str = "probability") -> Tensor:
    """Occlusion map [N,H,W]: mean over the windows covering a pixel of ``s_t(x) - s_t(x_w)``.

    ``s`` is the softmax probability (``score="probability"``, default) or the logit
    (``score="logit"``, Captum's default on a model that returns logits: it does not saturate
    when the model is very sure, lesson 02); ``x_w`` is ``x`` with window ``w`` filled (all
    channels). ``fill``: None = mid-gray pixel 0.5 mapped into the model's input space (0 in a
    normalized space is the dataset's mean colour, not black, and a black patch adds strong
    edges of its own); a float = that gray level in [0, 1]; ``"mean"`` = each image's mean
    colour; a tensor broadcastable to ``x``, in input space. The input space comes from
    ``normalization``, else ``model.normalization``, else raw pixels. The N x windows occluded
    images run under ``torch.inference_mode()`` in chunks of ``batch_size`` (default 32).
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {sorted(SCORES)}, got {score!r}")
    to_score = SCORES[score]
    with explaining(model, x, normalization) as ctx, torch.inference_mode():
        x = ctx.x
        logits = logits_of(model, x)
        t = resolve_target(target, logits)
        p_clean = pick(to_score(logits), t)
        masks = window_masks(x.shape[2:], patch, stride, x.device)
        filled = resolve_fill(fill, x, ctx.normalization)
        drops = torch.empty(x.shape[0] * masks.shape[0], dtype=p_clean.dtype, device=x.device)
        for idx in chunks(drops.numel(), batch_size_or(DEFAULT_BATCH_SIZE, batch_size),
                          x.device):
            img, win = idx // masks.shape[0], idx % masks.shape[0]
            occluded = torch.where(masks[win, None], filled[img], x[img])
            drops[idx] = p_clean[img] - pick(to_score(logits_of(model, occluded)), t[img])
        flat = masks.flatten(1).to(drops.dtype)  # [windows, H*W]
        heat = drops.view(x.shape[0], -1) @ flat / flat.sum(dim=0)
        return to_output(heat.view(x.shape[0], *x.shape[2:]))


SCORES = {"probability": lambda logits: logits.softmax(dim=1), "logit": lambda logits: logits}


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start of each window along an axis: every ``stride``, plus one flush with the border."""
    if not 1 <= patch <= size or stride < 1 or (stride > patch and patch < size):
        raise ValueError(f"need 1 <= stride <= patch <= size (stride is free if patch == size), "
                         f"got stride={stride}, patch={patch}, size={size}")
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else [*starts, size - patch]


def window_masks(shape: torch.Size, patch: int | tuple[int, int], stride: int | tuple[int, int],
                 device: torch.device) -> Tensor:
    """Boolean masks [windows, H, W], row-major over window positions."""
    (ph, pw), (sh, sw) = int_pair("patch", patch), int_pair("stride", stride)
    rows, cols = window_starts(shape[0], ph, sh), window_starts(shape[1], pw, sw)
    masks = torch.zeros(len(rows), len(cols), *shape, dtype=torch.bool, device=device)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            masks[i, j, r:r + ph, c:c + pw] = True
    return masks.flatten(0, 1)


def resolve_fill(fill: Fill, x: Tensor, normalization: Normalization) -> Tensor:
    """The occluding values, a tensor shaped like ``x`` in the model's input space."""
    if fill is None:
        fill = 0.5
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"fill must be None, a float, 'mean' or a tensor, got {fill!r}")
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)  # per-channel affine: commutes
    if isinstance(fill, Tensor):
        try:
            return fill.to(device=x.device, dtype=x.dtype).expand_as(x)
        except RuntimeError as err:
            raise ValueError(f"fill of shape {tuple(fill.shape)} does not broadcast to "
                             f"{tuple(x.shape)}") from err
    if isinstance(fill, bool) or not isinstance(fill, int | float) or not 0 <= fill <= 1:
        raise ValueError(f"a numeric fill is a pixel value in [0, 1], got {fill!r}")
    return normalization.constant(x, float(fill))
