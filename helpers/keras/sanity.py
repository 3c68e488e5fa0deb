"""Model-randomization sanity check (Adebayo et al., 2018) for Keras explainers.

Lesson: ``14_grad_cam_e_integrated_gradients.ipynb``. The Keras twin of
:mod:`helpers.torch.sanity` (same functions, same return values), a thin adapter over
:mod:`helpers.core.sanity`, which drives the cascade, scores it and states the one
re-initialization rule of both tracks: each layer gets fresh weights from its own initializers
(``kernel_initializer``, ``bias_initializer``, BatchNorm's ``gamma_initializer``...).

* Copy: :func:`copy_model` rebuilds the model with ``keras.models.clone_model`` (new layers and
  variables; nested models such as the classifiers' backbone and registered custom layers such
  as :class:`helpers.keras.models.Preprocess` are rebuilt from their configs) and copies every
  variable. The caller's model is never touched.
* Cached explainers: :mod:`helpers.keras.explain` caches one ``tf.function`` per model object (a
  ``weakref.WeakKeyDictionary``, not ``id(model)``), and a traced graph reads the variables it
  captured by reference. The copy is a new object, so it gets graphs of its own, built on its own
  variables; the layers are re-initialized with ``Variable.assign`` (in place, never replacing a
  variable), so the copy's cached graphs see every new value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np

from helpers.core import sanity
from helpers.core.attribution import unknown_name_message
from helpers.core.sanity import Scores
from helpers.keras.models import BACKBONE, all_layers, find_layer

Explain = Callable[[keras.Model, Any], Any]  # (model, images [N,H,W,C]) -> maps
METRICS = sanity.metric_table(channels_last=True)
NORMALIZATION = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                 keras.layers.GroupNormalization)


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy: ``keras.models.clone_model`` (new layers) plus every weight copied.

    Nested models are rebuilt too (the copy shares no layer and no variable with ``model``);
    custom layers must be registered serializable, as :class:`helpers.keras.models.Preprocess`.
    """
    clone = keras.models.clone_model(model)
    src, dst = model.weights, clone.weights
    layout = [(v.path, tuple(v.shape)) for v in src]
    if layout != [(v.path, tuple(v.shape)) for v in dst]:
        raise RuntimeError(f"clone_model rebuilt {model.name!r} with other weights: cannot "
                           "copy them one to one")
    for a, b in zip(src, dst, strict=True):
        b.assign(a.value)
    return clone


def weight_layers(model: keras.Model) -> list[str]:
    """Names of the layers with weights, nested models included, from the input up.

    Each nested model is listed before its own layers: naming it randomizes all of them.
    """
    return [layer.name for layer in all_layers(model) if layer.weights]


def default_cascade(model: keras.Model, n_layers: int = 4, backbone: str = BACKBONE
                    ) -> list[str]:
    """Layers to randomize, top first: the head's layers with a kernel, then ``n_layers`` more.

    For the classifiers of :mod:`helpers.keras.models`: ``["logits", <last n_layers conv layers
    of the nested backbone, top first>]``, e.g. MobileNet ``["logits", "conv_pw_13",
    "conv_dw_13", "conv_pw_12", "conv_dw_12"]``. Only layers with a kernel (Dense, Conv,
    DepthwiseConv) are listed: the BatchNorm layer after each conv can be added by name. Without
    a layer named ``backbone``: the top-most ``1 + n_layers`` layers with a kernel.
    """
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers}")
    names = [layer.name for layer in model.layers]
    if backbone not in names:
        return [lyr.name for lyr in reversed(_leaves(model)) if _has_kernel(lyr)][:1 + n_layers]
    head = [leaf for layer in model.layers[names.index(backbone) + 1:]
            for leaf in _leaves_of(layer)]
    base = _leaves(model.get_layer(backbone))
    return ([lyr.name for lyr in reversed(head) if _has_kernel(lyr)]
            + [lyr.name for lyr in reversed(base) if _has_kernel(lyr)][:n_layers])


def reinitialize(layer: keras.layers.Layer, seed: int) -> None:
    """Re-draw the weights of ``layer`` (of every layer inside it, for a model) from its own
    initializers, seeded by ``seed``; in place (``Variable.assign``).

    Random initializers get a seed derived from ``seed`` and the weight's position; constant ones
    (zeros, ones: biases, BatchNorm) restore their value. A trainable weight without a known
    initializer raises ValueError.
    """
    seeds = iter(np.random.default_rng(seed).integers(0, 2**31 - 1, size=10_000))
    for leaf in _leaves_of(layer):
        for var in leaf.weights:
            if not keras.backend.is_float_dtype(var.dtype):
                continue
            init = _initializer(leaf, var.name)
            if init is None:
                if var.trainable:
                    raise ValueError(f"no initializer known for weight {var.path!r} of layer "
                                     f"{leaf.name!r}: cannot re-initialize it")
                continue
            config = init.get_config()
            if "seed" in config:
                init = type(init).from_config({**config, "seed": int(next(seeds))})
            var.assign(init(shape=tuple(var.shape), dtype=var.dtype))


def _initializer(layer: keras.layers.Layer, name: str):
    """The layer's initializer of its weight ``name`` (``kernel`` -> ``kernel_initializer``...)."""
    candidates = [f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer"]
    if name == "kernel":
        candidates.append("depthwise_initializer")  # DepthwiseConv: weight "kernel"
    for attr in candidates:
        if (init := getattr(layer, attr, None)) is not None:
            return keras.initializers.get(init)
    return None


def cascading_randomization(model: keras.Model, layers: Sequence[str], explain: Explain,
                            images, seed: int = 0) -> Iterator[tuple[str, Any]]:
    """Yield ``("original", maps)`` then, randomizing ``layers`` one more at a time in the order
    given (top first), ``(layer, maps)`` of ``explain(model_copy, images)``.

    ``layers``: names of layers with weights, top-level (the head ``"logits"``) or inside nested
    models (the ``"backbone"``); :func:`default_cascade` proposes some. Unknown or weightless
    names raise ValueError at once. Works on :func:`copy_model`: the caller's model is untouched.
    The same seed gives the same random weights.
    """
    _check_layers(model, layers)
    return sanity.cascade(copy_model(model), list(layers), find_layer, reinitialize, explain,
                          images, seed)


def randomization_scores(model: keras.Model, layers: Sequence[str],
                         explainers: dict[str, Explain], images, seed: int = 0,
                         metric: str | Callable = "spearman") -> Scores:
    """Mean similarity of original and randomized maps: ``{method: [(layer, score), ...]}``.

    As :func:`helpers.torch.sanity.randomization_scores`: one pair per entry of ``layers``
    (randomized cumulatively, in that order); ``metric``: ``"spearman"`` (default, rank
    correlation of |maps|), ``"ssim"`` (of |maps| scaled to [0, 1]; channel maps [N,H,W,C], as
    Integrated Gradients gives, are first summed as ``|a|`` over channels), or a function
    ``(original, randomized) -> [N]``. NaN (Spearman of a constant map, e.g. an all-zero
    Grad-CAM) counts as 0. For several metrics from one cascade: :func:`randomization_metrics`.
    """
    return randomization_metrics(model, layers, explainers, images, seed,
                                 {"score": metric})["score"]


def randomization_metrics(model: keras.Model, layers: Sequence[str],
                          explainers: dict[str, Explain], images, seed: int = 0,
                          metrics: Sequence[str] | dict[str, str | Callable] = tuple(METRICS),
                          per_image: bool = False) -> dict[str, Scores]:
    """:func:`randomization_scores` for several metrics at once, explaining each step once.

    Returns ``{metric name: {method: [(layer, score), ...]}}``; ``metrics`` lists names of
    :data:`METRICS` or maps names of your choice to a name or a function. ``per_image``: the
    scores of every image instead of their mean (for :func:`helpers.core.sanity.cascade_summary`).
    Each explainer gets a cascade (a fresh copy) of its own.
    """
    _check_layers(model, layers)
    return sanity.score_cascades(
        lambda explain: cascading_randomization(model, layers, explain, images, seed),
        explainers, metrics, METRICS, per_image)


def _check_layers(model: keras.Model, layers: Sequence[str]) -> None:
    if isinstance(layers, str):
        raise ValueError(f"layers must be a list of names, got the string {layers!r}")
    candidates = weight_layers(model)
    for name in layers:
        layer = find_layer(model, name)
        if layer is None:
            raise ValueError(unknown_name_message(
                "layer", name, [lyr.name for lyr in all_layers(model)], candidates, shown=40,
                note="(layers with weights, nested models included)"))
        if not layer.weights:
            raise ValueError(f"layer {name!r} has no weights (nothing to randomize); the top "
                             f"layers with weights are: {', '.join(candidates[:-41:-1])}")


def _has_kernel(layer: keras.layers.Layer) -> bool:
    return not isinstance(layer, NORMALIZATION) and any(len(v.shape) >= 2 for v in layer.weights)


def _leaves(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer that is not itself a model, nested models included, from the input up."""
    return [layer for layer in all_layers(model) if not isinstance(layer, keras.Model)]


def _leaves_of(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return _leaves(layer) if isinstance(layer, keras.Model) else [layer]
