"""Model-randomization sanity check (Adebayo et al., 2018) for PyTorch explainers.

Lesson: ``07_comparativa.ipynb``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from helpers.metrics import spearman


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
                         explainers: dict[str, Callable], x: Tensor,
                         seed: int = 0) -> dict[str, list[tuple[str, float]]]:
    """Mean Spearman correlation (|maps|) between original and randomized maps per step."""
    scores: dict[str, list[tuple[str, float]]] = {}
    for method, explain in explainers.items():
        steps = iter(cascading_randomization(model, layers, explain, x, seed))
        _, original = next(steps)
        # an undefined correlation (a constant map) counts as "no longer the same map": 0
        scores[method] = [(layer, float(np.nan_to_num(spearman(original, maps), nan=0.0).mean()))
                          for layer, maps in steps]
    return scores
