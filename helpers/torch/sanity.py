"""Model-randomization sanity check (Adebayo et al., 2018) for PyTorch explainers.

Lesson: ``07_comparativa.ipynb``. A thin adapter over :mod:`helpers.core.sanity` (the cascade,
the scoring and the re-initialization rule shared with :mod:`helpers.keras.sanity`): this module
copies the model, finds its submodules by name and re-initializes them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from helpers.core import sanity
from helpers.core.attribution import unknown_name_message
from helpers.core.sanity import Scores

METRICS = sanity.metric_table(channels_last=False)


def reinitialize(module: nn.Module, seed: int) -> None:
    """Re-draw every parameter inside ``module`` from its own initialization distribution.

    Calls ``reset_parameters()`` of each submodule that has one (Conv/Linear: torch's default
    Kaiming-uniform; BatchNorm: weight 1, bias 0, running statistics reset), seeded by ``seed``
    without touching the global random state.
    """
    devices = sorted({p.device.index for p in module.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for sub in module.modules():
            if callable(getattr(sub, "reset_parameters", None)):
                sub.reset_parameters()
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.reset_running_stats()


def cascading_randomization(model: nn.Module, layers: Sequence[str], explain: Callable,
                            x: Tensor, seed: int = 0) -> Iterator[tuple[str, Tensor]]:
    """Yield ``("original", maps)`` then, randomizing ``layers`` one more at a time in the order
    given (top first), ``(layer, maps)`` of ``explain(model_copy, x)``.

    Works on a deep copy: the caller's model is untouched. The same seed gives the same weights.
    """
    _check_layers(model, layers)
    return sanity.cascade(copy.deepcopy(model).eval(), list(layers), _find, reinitialize,
                          explain, x, seed)


def randomization_scores(model: nn.Module, layers: Sequence[str],
                         explainers: dict[str, Callable], x: Tensor, seed: int = 0,
                         metric: str | Callable = "spearman") -> Scores:
    """Mean similarity of original and randomized maps: ``{method: [(layer, score), ...]}``.

    One pair per entry of ``layers`` (randomized cumulatively, in that order). ``metric``:
    ``"spearman"`` (default; rank correlation of |maps|, :func:`helpers.core.similarity.spearman`),
    ``"ssim"`` (:func:`helpers.core.similarity.ssim` of |maps| scaled to [0, 1]; channel maps
    [N,C,H,W] are first summed as ``|a|`` over channels), or a function
    ``(original, randomized) -> [N]``. NaN (Spearman of a constant map) counts as 0. For several
    metrics from one (costly) cascade, use :func:`randomization_metrics`.
    """
    return randomization_metrics(model, layers, explainers, x, seed, {"score": metric})["score"]


def randomization_metrics(model: nn.Module, layers: Sequence[str],
                          explainers: dict[str, Callable], x: Tensor, seed: int = 0,
                          metrics: Sequence[str] | dict[str, str | Callable] = tuple(METRICS),
                          per_image: bool = False) -> dict[str, Scores]:
    """:func:`randomization_scores` for several metrics at once, explaining each step once.

    Returns ``{metric name: {method: [(layer, score), ...]}}``; ``metrics`` lists names of
    :data:`METRICS` or maps names of your choice to a name or a function. ``per_image``: the
    scores of every image instead of their mean (for :func:`helpers.core.sanity.cascade_summary`).
    """
    _check_layers(model, layers)
    return sanity.score_cascades(
        lambda explain: cascading_randomization(model, layers, explain, x, seed),
        explainers, metrics, METRICS, per_image)


def _find(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


def _check_layers(model: nn.Module, layers: Sequence[str]) -> None:
    if isinstance(layers, str):
        raise ValueError(f"layers must be a list of names, got the string {layers!r}")
    names = [name for name, _ in model.named_modules() if name]
    for name in layers:
        if name not in names:
            raise ValueError(unknown_name_message("layer", name, names, shown=40))
