"""Deletion and insertion curves (Petsiuk et al., RISE, 2018) for PyTorch classifiers.

Lesson: ``07_comparativa.ipynb``. A thin adapter: the curves are computed by the numpy core
:mod:`helpers.core.quality`; this module only turns a model into its callback ``score_fn`` (the
softmax probability of the target class) and builds the baselines in the model's input space
(:func:`helpers.torch.explain.make_reference`, the same references as Integrated Gradients).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from helpers.core import quality
from helpers.core.maps import as_heatmaps
from helpers.core.quality import DeletionInsertion
from helpers.torch.explain import make_reference
from helpers.torch.explain.base import (
    Target,
    check_input,
    frozen,
    logits_of,
    model_device_dtype,
    pick,
    resolve_normalization,
    resolve_target,
)
from helpers.torch.normalization import Normalization

Baseline = str | Tensor | np.ndarray
ScoreFn = Callable[..., np.ndarray]


def probability_fn(model: nn.Module, target: int | Sequence[int] | Tensor | np.ndarray,
                   device: torch.device | str | None = None) -> ScoreFn:
    """``score(batch, rows=None) -> np.ndarray [B]``: softmax probability of the target class.

    ``batch`` is a numpy array or tensor [B,C,H,W] in the model's input space. ``target`` is one
    class for every image, or one class per original image, ``target[rows[b]]`` being the class of
    row ``b`` (``rows=None``: row b is image b). This is the ``score_fn`` that
    :func:`helpers.core.quality.deletion_curve` expects. Each call runs under
    ``torch.inference_mode()`` in eval mode on ``device`` (default: the model's), then restores
    the model's train/eval flags and ``requires_grad`` exactly; ``batch`` is never modified.
    """
    if target is None:
        raise ValueError("probability_fn needs the target class(es): an int or one int per "
                         "image (the class predicted on the clean image, say)")
    model_device, dtype = model_device_dtype(model)
    device = model_device if device is None else torch.device(device)
    single = isinstance(target, numbers.Integral) and not isinstance(target, bool)
    classes = int(target) if single else torch.as_tensor(target).reshape(-1).cpu()

    def score(batch, rows=None) -> np.ndarray:
        x = torch.as_tensor(batch).detach().to(device=device, dtype=dtype)
        if isinstance(classes, int):
            t: Target = classes
        else:
            idx = torch.arange(len(x)) if rows is None else torch.as_tensor(rows).reshape(-1)
            if len(idx) and int(idx.max()) >= len(classes):
                raise ValueError(f"row index {int(idx.max())} but only {len(classes)} targets")
            t = classes[idx.long()]
        with frozen(model), torch.inference_mode():
            logits = logits_of(model, x)
            p = pick(logits.softmax(dim=1), resolve_target(t, logits))
            return p.to(device="cpu", dtype=torch.float64).numpy()

    return score


def deletion_insertion(model: nn.Module, x: Tensor, maps, target: Target = None,
                       steps: int = quality.DEFAULT_STEPS, baseline: Baseline = "blur",
                       batch_size: int | None = None,
                       normalization: Normalization | None = None) -> DeletionInsertion:
    """Deletion and insertion curves of ``maps`` for ``model`` on ``x`` [N,C,H,W] (input space).

    ``maps``: [N,H,W] (tensor or array; higher = more important; one [H,W] map serves all
    images; channel maps [N,C,H,W] become ``sum |a|`` over channels). ``target``: None (the
    class predicted on ``x``), an int, or one int per image. Pixels are removed (deletion) or
    revealed (insertion) most important first, in ``steps`` equal chunks, replaced by / taken
    from ``baseline`` (``"blur"``, ``"black"``, ``"gray"``, ``"mean"``, ``"noise"`` or a tensor:
    :func:`helpers.torch.explain.make_reference`, built with ``normalization``, else
    ``model.normalization``, else raw pixels; RISE's code deletes to a constant, zeros of its
    normalized input, and inserts into a blurred copy). The N x (steps + 1) images of each
    curve run in chunks of ``batch_size`` (default 32).

    Returns :class:`helpers.core.quality.DeletionInsertion`: ``.deletion`` and ``.insertion``
    [N, steps + 1], ``.deletion_auc`` (lower = better) and ``.insertion_auc`` (higher = better)
    [N]. See :func:`helpers.core.quality.deletion_curve` for the details.
    """
    check_input(x)
    norm = resolve_normalization(model, normalization, x.shape[1])
    device, dtype = model_device_dtype(model)
    x = x.detach().to(device=device, dtype=dtype, copy=True)
    with frozen(model), torch.inference_mode():
        t = resolve_target(target, logits_of(model, x))
        ref = make_reference(baseline, x, norm)
    if isinstance(maps, Tensor):
        maps = maps.detach().cpu().numpy()
    heat = maps if np.ndim(maps) == 2 else as_heatmaps(maps)  # [H,W]: same for all
    return quality.deletion_insertion(probability_fn(model, t, device), x.cpu().numpy(), heat,
                                      steps, ref.cpu().numpy(), batch_size, channels_last=False)
