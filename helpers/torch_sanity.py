"""Model-randomization sanity check (Adebayo et al., 2018) for PyTorch explainers.

Lesson: ``07_comparativa.ipynb``. The scoring is shared with the Keras twin
(:mod:`helpers.keras_sanity`) in the framework-neutral :mod:`helpers.sanity`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from helpers.sanity import METRICS, Scores, score_cascades


def reinitialize(module: nn.Module, generator: torch.Generator) -> None:
    """Give every weight and bias inside ``module`` fresh random values (BN: identity stats)."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.reset_running_stats()
        for name, param in sub.named_parameters(recurse=False):
            with torch.no_grad():
                if name == "weight" and param.dim() > 1:
                    fan_in = param[0].numel()
                    param.copy_(torch.randn(param.shape, generator=generator) / fan_in**0.5)
                else:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.1
                                + (1.0 if name == "weight" else 0.0))


def cascading_randomization(model: nn.Module, layers: Sequence[str], explain: Callable,
                            x: Tensor, seed: int = 0) -> Iterator[tuple[str, Tensor]]:
    """Yield ``("original", maps)`` then, randomizing ``layers`` one more at a time in the order
    given (top first), ``(layer, maps)`` of ``explain(model_copy, x)``.

    Works on a deep copy: the caller's model is untouched.
    """
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; valid: {[n for n in modules if n][:40]}")
    work = copy.deepcopy(model).eval()
    work_modules = dict(work.named_modules())
    generator = torch.Generator().manual_seed(seed)
    yield "original", explain(work, x)
    for name in layers:
        reinitialize(work_modules[name], generator)
        yield name, explain(work, x)


def randomization_scores(model: nn.Module, layers: Sequence[str],
                         explainers: dict[str, Callable], x: Tensor, seed: int = 0,
                         metric: str | Callable = "spearman") -> Scores:
    """Mean similarity of original and randomized maps: ``{method: [(layer, score), ...]}``.

    One pair per entry of ``layers`` (randomized cumulatively, in that order). ``metric``:
    ``"spearman"`` (default; rank correlation of |maps|, :func:`helpers.metrics.spearman`),
    ``"ssim"`` (:func:`helpers.metrics.ssim` of |maps| scaled to [0, 1]; channel maps [N,C,H,W]
    are first summed as ``|a|`` over channels), or a function ``(original, randomized) -> [N]``.
    An undefined value (NaN: Spearman of a constant map) counts as 0, "no longer the same map".
    As in Adebayo et al. (2018), a map that keeps scoring high while the model is destroyed does
    not depend on what the model learned. For several metrics from one (costly) cascade, use
    :func:`randomization_metrics`.
    """
    return randomization_metrics(model, layers, explainers, x, seed, {"score": metric})["score"]


def randomization_metrics(model: nn.Module, layers: Sequence[str],
                          explainers: dict[str, Callable], x: Tensor, seed: int = 0,
                          metrics: Sequence[str] | dict[str, str | Callable] = tuple(METRICS)
                          ) -> dict[str, Scores]:
    """:func:`randomization_scores` for several metrics at once, explaining each step once.

    Returns ``{metric name: {method: [(layer, score), ...]}}``; ``metrics`` lists names of
    :data:`METRICS` or maps names of your choice to a name or a function.
    """
    return score_cascades(lambda explain: cascading_randomization(model, layers, explain, x, seed),
                          explainers, metrics, METRICS)
