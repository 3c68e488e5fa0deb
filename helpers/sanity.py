"""Scoring of the model-randomization sanity check (Adebayo et al., 2018), framework-neutral.

Lessons: ``07_comparativa.ipynb`` (PyTorch, :mod:`helpers.torch_sanity`) and
``14_grad_cam_e_integrated_gradients.ipynb`` (Keras, :mod:`helpers.keras_sanity`). Those modules
randomize the model and produce the maps; this one (numpy only, no PyTorch nor TensorFlow)
compares every randomized step with the original maps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from helpers.metrics import as_heatmaps, spearman, ssim

Scores = dict[str, list[tuple[str, float]]]
# explain -> ("original", maps), (layer, maps), ...: one cascade of a framework module
Cascade = Callable[[Callable], Iterator[tuple[str, Any]]]


def heatmaps(maps, channels_last: bool = False) -> np.ndarray:
    """Maps as [N,H,W]: channel maps [N,C,H,W] (or [N,H,W,C]) become the sum of |a|."""
    arr = np.asarray(maps, dtype=np.float64)
    if channels_last and arr.ndim == 4:
        arr = np.moveaxis(arr, -1, 1)
    return as_heatmaps(arr)


def ssim_maps(original, maps, channels_last: bool = False) -> np.ndarray:
    """:func:`helpers.metrics.ssim` of paired maps after :func:`heatmaps`, one value per image."""
    return ssim(heatmaps(original, channels_last), heatmaps(maps, channels_last))


def _ssim_channels_last(original, maps) -> np.ndarray:
    return ssim_maps(original, maps, channels_last=True)


# Metrics by name, for maps [N,H,W] or [N,C,H,W] (PyTorch) / [N,H,W,C] (Keras): Spearman does
# not care about the layout (both maps are flattened alike), SSIM needs one map per image.
METRICS: dict[str, Callable] = {"spearman": spearman, "ssim": ssim_maps}
METRICS_CHANNELS_LAST: dict[str, Callable] = {"spearman": spearman, "ssim": _ssim_channels_last}


def resolve_metrics(metrics: Sequence[str] | dict[str, str | Callable],
                    table: dict[str, Callable] = METRICS) -> dict[str, Callable]:
    """``{name: function}`` from names of ``table``, or ``{your name: table name or function}``."""
    named = dict(metrics) if isinstance(metrics, dict) else {name: name for name in metrics}
    fns = {}
    for name, metric in named.items():
        if isinstance(metric, str) and metric not in table:
            raise ValueError(f"metric must be one of {sorted(table)} or a function, "
                             f"got {metric!r}")
        fns[name] = table[metric] if isinstance(metric, str) else metric
    return fns


def score_cascades(cascade: Cascade, explainers: dict[str, Callable],
                   metrics: Sequence[str] | dict[str, str | Callable],
                   table: dict[str, Callable] = METRICS) -> dict[str, Scores]:
    """Run ``cascade(explain)`` once per explainer and score every step against the original.

    Returns ``{metric name: {method: [(layer, mean score over images), ...]}}``. An undefined
    value (NaN: Spearman of a constant map) counts as 0, "no longer the same map".
    """
    fns = resolve_metrics(metrics, table)
    results: dict[str, Scores] = {name: {} for name in fns}
    for method, explain in explainers.items():
        steps = iter(cascade(explain))
        original = np.asarray(next(steps)[1])
        for name in fns:
            results[name][method] = []
        for layer, maps in steps:
            maps = np.asarray(maps)
            for name, fn in fns.items():
                value = np.nan_to_num(np.asarray(fn(original, maps), dtype=np.float64), nan=0.0)
                results[name][method].append((layer, float(value.mean())))
    return results
