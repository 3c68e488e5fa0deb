"""Model-randomization sanity check (Adebayo et al., 2018) for Keras explainers.

Lesson: ``14_grad_cam_e_integrated_gradients.ipynb``. The Keras twin of
:mod:`helpers.torch_sanity`: same functions, same return values, same scoring (shared in
:mod:`helpers.sanity`). Re-initialize the model's layers from the top (the logits) down, one
more at a time, and compare each step's maps with the original ones: a map that stays the same
while the model is destroyed does not depend on what the model learned.

* Copy: :func:`copy_model` rebuilds the model with ``keras.models.clone_model`` (new layers and
  variables; nested models such as the classifiers' ``"backbone"`` and registered custom layers
  such as :class:`helpers.keras_models.Preprocess` are rebuilt from their configs) and copies
  every variable. The caller's model is never touched.
* Cached explainers: :mod:`helpers.keras_explain` caches one ``tf.function`` per model object (a
  ``weakref.WeakKeyDictionary``, not ``id(model)``), and a traced graph reads the variables it
  captured by reference. The copy is a new object, so it gets graphs of its own, built on its own
  variables; the layers are re-initialized with ``Variable.assign`` (in place, never replacing a
  variable), so the copy's cached graphs see every new value.
* Re-initialization (:func:`reinitialize`): every array with 2 or more axes (Dense and conv
  kernels) ~ N(0, 1/fan_in), every other weight (biases) ~ N(0, 0.1^2), as the PyTorch module
  does; normalization layers go back to identity, their untrained state (Keras' own initial
  values): gamma = 1, beta = 0, moving mean 0, moving variance 1. Random BN statistics would
  instead rescale each channel arbitrarily (a variance near 0 blows it up), on top of the random
  kernels. Seeded by ``numpy.random.default_rng(seed)``: deterministic.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np

from helpers.keras_models import all_layers
from helpers.sanity import METRICS_CHANNELS_LAST as METRICS
from helpers.sanity import Scores, score_cascades

Explain = Callable[[keras.Model, Any], Any]  # (model, images [N,H,W,C]) -> maps
BIAS_STD = 0.1  # std of re-initialized biases and other 0-D/1-D weights (as torch_sanity)
NORMALIZATION = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                 keras.layers.GroupNormalization, keras.layers.Normalization)
IDENTITY = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0,
            "mean": 0.0, "variance": 1.0}  # normalization weights, by variable name
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
              keras.layers.Conv3DTranspose)


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy: ``keras.models.clone_model`` (new layers) plus every weight copied.

    Nested models are rebuilt too (the copy shares no layer and no variable with ``model``);
    custom layers must be registered serializable, as :class:`helpers.keras_models.Preprocess`.
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


def default_cascade(model: keras.Model, n_layers: int = 4, backbone: str = "backbone"
                    ) -> list[str]:
    """Layers to randomize, top first: the head's layers with a kernel, then ``n_layers`` more.

    For the classifiers of :mod:`helpers.keras_models`: ``["logits", <last n_layers conv layers
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


def reinitialize(layer: keras.layers.Layer, rng: np.random.Generator) -> None:
    """Give the weights of ``layer`` (of every layer inside it, for a model) fresh values.

    In place (``Variable.assign``). Kernels ~ N(0, 1/fan_in), other weights ~ N(0, 0.1^2),
    normalization layers back to identity (see the module docstring).
    """
    for leaf in _leaves_of(layer):
        for var in leaf.weights:
            if not keras.backend.is_float_dtype(var.dtype):
                continue
            shape = tuple(var.shape)
            if isinstance(leaf, NORMALIZATION):
                if var.name in IDENTITY:
                    var.assign(np.full(shape, IDENTITY[var.name], dtype=np.float32))
                continue
            if len(shape) >= 2:
                value = rng.standard_normal(shape) / math.sqrt(_fan_in(leaf, var.name, shape))
            else:
                value = rng.standard_normal(shape) * BIAS_STD
            var.assign(value.astype(np.float32))  # cast to the variable's dtype by assign


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
    return _cascade(model, list(layers), explain, images, seed)


def randomization_scores(model: keras.Model, layers: Sequence[str],
                         explainers: dict[str, Explain], images, seed: int = 0,
                         metric: str | Callable = "spearman") -> Scores:
    """Mean similarity of original and randomized maps: ``{method: [(layer, score), ...]}``.

    As :func:`helpers.torch_sanity.randomization_scores`: one pair per entry of ``layers``
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
                          metrics: Sequence[str] | dict[str, str | Callable] = tuple(METRICS)
                          ) -> dict[str, Scores]:
    """:func:`randomization_scores` for several metrics at once, explaining each step once.

    Returns ``{metric name: {method: [(layer, score), ...]}}``; ``metrics`` lists names of
    :data:`METRICS` or maps names of your choice to a name or a function. Each explainer gets a
    cascade (a fresh copy) of its own.
    """
    _check_layers(model, layers)
    return score_cascades(
        lambda explain: cascading_randomization(model, layers, explain, images, seed),
        explainers, metrics, METRICS)


def _cascade(model: keras.Model, layers: list[str], explain: Explain, images,
             seed: int) -> Iterator[tuple[str, Any]]:
    work = copy_model(model)
    rng = np.random.default_rng(seed)
    yield "original", explain(work, images)
    for name in layers:
        reinitialize(_find(work, name), rng)
        yield name, explain(work, images)


def _check_layers(model: keras.Model, layers: Sequence[str]) -> None:
    if isinstance(layers, str):
        raise ValueError(f"layers must be a list of names, got the string {layers!r}")
    unknown = [name for name in layers if _find(model, name) is None]
    empty = [name for name in layers if name not in unknown and not _find(model, name).weights]
    if unknown or empty:
        raise ValueError(_bad_layers_message(model, unknown, empty))


def _fan_in(layer: keras.layers.Layer, name: str, shape: tuple[int, ...]) -> int:
    """Inputs seen by one output unit: Dense [in, out], Conv [k..., in, out] (Keras layouts)."""
    receptive = math.prod(shape[:-2])
    if isinstance(layer, DEPTHWISE) or name == "depthwise_kernel":  # [k..., in, multiplier]
        return receptive
    if isinstance(layer, TRANSPOSED):  # [k..., out, in]
        return receptive * shape[-1]
    return receptive * shape[-2]


def _has_kernel(layer: keras.layers.Layer) -> bool:
    return not isinstance(layer, NORMALIZATION) and any(len(v.shape) >= 2 for v in layer.weights)




def _leaves(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer that is not itself a model, nested models included, from the input up."""
    return [layer for layer in all_layers(model) if not isinstance(layer, keras.Model)]


def _leaves_of(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return _leaves(layer) if isinstance(layer, keras.Model) else [layer]


def _find(model: keras.Model, name: str) -> keras.layers.Layer | None:
    """The layer called ``name``: at the top level first, then inside nested models."""
    for layer in model.layers:
        if layer.name == name:
            return layer
    for layer in model.layers:
        if isinstance(layer, keras.Model) and (found := _find(layer, name)) is not None:
            return found
    return None


def _bad_layers_message(model: keras.Model, unknown: list[str], empty: list[str],
                        shown: int = 40) -> str:
    candidates = weight_layers(model)[::-1]
    parts = []
    if unknown:
        close = {n: difflib.get_close_matches(str(n), candidates, n=3) for n in unknown}
        hints = "; ".join(f"{n!r}: did you mean {', '.join(map(repr, c))}?"
                          for n, c in close.items() if c)
        parts.append(f"unknown layers {unknown}" + (f" ({hints})" if hints else ""))
    if empty:
        parts.append(f"layers without weights (nothing to randomize) {empty}")
    return (f"{'; '.join(parts)}. Layers with weights, top first ({min(shown, len(candidates))} "
            f"of {len(candidates)}): {', '.join(candidates[:shown])}")
