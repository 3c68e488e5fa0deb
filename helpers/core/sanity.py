"""The model-randomization sanity check (Adebayo et al., 2018), framework-neutral.

Lessons: ``07_comparativa.ipynb`` (PyTorch, :mod:`helpers.torch.sanity`) and
``14_grad_cam_e_integrated_gradients.ipynb`` (Keras, :mod:`helpers.keras.sanity`).

The cascade: on a copy of the model, re-initialize the named layers one more at a time from the
top (the logits) down and explain the same images after each step. A map that stays the same
while the model is destroyed does not depend on what the model learned.

One re-initialization rule for both tracks, as in the paper: every layer gets fresh weights drawn
from **its own initialization distribution**, the one it had before training (PyTorch:
``reset_parameters()``; Keras: the layer's ``*_initializer``). Normalization layers thus go back
to identity (scale 1, shift 0, running mean 0 and variance 1). The framework adapters copy the
model, find its layers and re-initialize them; this module drives the cascade and scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from helpers.core.intervals import Estimate, bootstrap_mean
from helpers.core.maps import as_heatmaps
from helpers.core.similarity import spearman, ssim

Scores = dict[str, list[tuple[str, float]]]
# explain -> ("original", maps), (layer, maps), ...: one cascade
Cascade = Callable[[Callable], Iterator[tuple[str, Any]]]


def ssim_maps(original, maps, channels_last: bool = False) -> np.ndarray:
    """:func:`~helpers.core.similarity.ssim` of paired maps after channel reduction, per image."""
    return ssim(as_heatmaps(original, channels_last), as_heatmaps(maps, channels_last))


def metric_table(channels_last: bool) -> dict[str, Callable]:
    """Metrics by name for maps [N,H,W] or channel maps ([N,H,W,C] when ``channels_last``).

    Spearman does not care about the layout (both maps are flattened alike); SSIM needs one map
    per image.
    """
    return {"spearman": spearman,
            "ssim": lambda original, maps: ssim_maps(original, maps, channels_last)}


def resolve_metrics(metrics: Sequence[str] | dict[str, str | Callable],
                    table: dict[str, Callable]) -> dict[str, Callable]:
    """``{name: function}`` from names of ``table``, or ``{your name: table name or function}``."""
    named = dict(metrics) if isinstance(metrics, dict) else {name: name for name in metrics}
    fns = {}
    for name, metric in named.items():
        if isinstance(metric, str) and metric not in table:
            raise ValueError(f"metric must be one of {sorted(table)} or a function, "
                             f"got {metric!r}")
        fns[name] = table[metric] if isinstance(metric, str) else metric
    return fns


def cascade(work: Any, layers: Sequence[str], find: Callable[[Any, str], Any],
            reinitialize: Callable[[Any, int], None], explain: Callable, images: Any,
            seed: int = 0) -> Iterator[tuple[str, Any]]:
    """Yield ``("original", explain(work, images))``, then ``(layer, maps)`` after
    ``reinitialize(find(work, layer), seed + i)`` for the i-th layer, cumulatively.

    ``work`` is the adapter's private copy of the model: it is modified in place.
    """
    yield "original", explain(work, images)
    for i, name in enumerate(layers):
        reinitialize(find(work, name), seed + i)
        yield name, explain(work, images)


def score_cascades(run: Cascade, explainers: dict[str, Callable],
                   metrics: Sequence[str] | dict[str, str | Callable],
                   table: dict[str, Callable], per_image: bool = False) -> dict[str, Scores]:
    """Run ``run(explain)`` once per explainer and score every step against the original.

    Returns ``{metric name: {method: [(layer, mean score over images), ...]}}``, or with
    ``per_image`` the scores of every image (float64 [N]) instead of their mean, for intervals
    (:func:`cascade_summary`). An undefined value (NaN: Spearman of a constant map) counts as 0,
    "no longer the same map".
    """
    fns = resolve_metrics(metrics, table)
    results: dict[str, Scores] = {name: {} for name in fns}
    for method, explain in explainers.items():
        steps = iter(run(explain))
        original = np.asarray(next(steps)[1])
        for name in fns:
            results[name][method] = []
        for layer, maps in steps:
            maps = np.asarray(maps)
            for name, fn in fns.items():
                value = np.nan_to_num(np.asarray(fn(original, maps), dtype=np.float64), nan=0.0)
                results[name][method].append(
                    (layer, value if per_image else float(value.mean())))
    return results


def cascade_auc(per_image: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Area under each image's cascade curve, the original step (similarity 1) included.

    Steps are equally spaced on [0, 1] and joined by the trapezoid rule: 1 for a map that
    never changes, about 0.5 for one that falls linearly to 0, near 0 for one that changes at
    the first randomized layer. Returns float64 [N].
    """
    curve = np.stack([np.ones_like(per_image[0][1])] + [np.asarray(v) for _, v in per_image])
    return ((curve[1:] + curve[:-1]) / 2).mean(axis=0)


def cascade_summary(scores: dict[str, list[tuple[str, np.ndarray]]], steps: Sequence[str],
                    seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """Bootstrap interval of the per-image similarity at the named ``steps`` and of the AUC.

    ``scores``: ``{method: [(layer, per-image scores), ...]}`` of one metric (``per_image``
    output of :func:`score_cascades`). Returns ``{method: {step: Estimate, ..., "auc": ...}}``.
    """
    out = {}
    for method, rows in scores.items():
        by_layer = dict(rows)
        missing = [s for s in steps if s not in by_layer]
        if missing:
            raise ValueError(f"steps {missing} are not in the cascade of {method!r}: "
                             f"choose from {list(by_layer)}")
        out[method] = {s: bootstrap_mean(by_layer[s], seed=seed) for s in steps}
        out[method]["auc"] = bootstrap_mean(cascade_auc(rows), seed=seed)
    return out
