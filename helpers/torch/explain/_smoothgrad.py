"""SmoothGrad (Smilkov et al., 2017) over any explainer. Lesson: ``02_mapas_de_saliencia.ipynb``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import Tensor, nn

from helpers.core.validate import batch_size_or, non_negative, positive_int
from helpers.torch.explain.base import (
    Target,
    explaining,
    logits_of,
    resolve_target,
)
from helpers.torch.normalization import Normalization

DEFAULT_BATCH_SIZE = 64  # noisy images per call of ``method``


def smoothgrad(method: Callable[..., Tensor], model: nn.Module, x: Tensor, *args: object,
               target: Target = None, n_samples: int = 25, sigma: float = 0.15,
               seed: int | None = None, batch_size: int | None = None,
               normalization: Normalization | None = None, **kwargs: object) -> Tensor:
    """Mean of ``method(model, x + noise, *args, target=..., **kwargs)`` over ``n_samples``.

    ``method`` is any explainer of this package (``saliency``, ``grad_cam``, ...); its maps are
    averaged as they are (for ``saliency``: the mean of ``|grad|`` maxed over channels). The
    noise is Gaussian with std ``sigma`` in pixel units, i.e. ``sigma`` times the [0, 1] pixel
    range as in the paper (0.15 = 15%), divided by each channel's std to land in the model's
    input space. The target is resolved on the clean ``x`` (None = its predicted class).
    The N x n_samples noisy images go to ``method`` in chunks of ``batch_size`` (default 64);
    ``seed`` makes the noise reproducible.
    """
    n_samples = positive_int("n_samples", n_samples)
    sigma = non_negative("sigma", sigma)
    size = batch_size_or(DEFAULT_BATCH_SIZE, batch_size)
    with explaining(model, x, normalization) as ctx:
        x = ctx.x
        with torch.inference_mode():
            t = resolve_target(target, logits_of(model, x))
        std = x.new_tensor(ctx.normalization.std).view(1, -1, 1, 1)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        noisy = x.repeat_interleave(n_samples, dim=0)
        noise = torch.randn(noisy.shape, generator=gen, dtype=x.dtype).to(x.device)
        noisy = noisy + sigma * noise / std
        targets = t.repeat_interleave(n_samples)
        if "normalization" in inspect.signature(method).parameters:
            kwargs["normalization"] = ctx.normalization
        maps = [method(model, noisy[i:i + size], *args, target=targets[i:i + size], **kwargs)
                for i in range(0, noisy.shape[0], size)]
        maps = torch.cat(maps)
        return maps.view(x.shape[0], n_samples, *maps.shape[1:]).mean(dim=1)
