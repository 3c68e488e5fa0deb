"""Grad-CAM and Integrated Gradients for Keras classifiers.

Lesson: ``14_grad_cam_e_integrated_gradients.ipynb``. Both explain the target's logit (the
pre-softmax score), take raw-pixel batches [N, H, W, C] (what the models of
:mod:`helpers.keras_models` take) and return numpy float32 arrays.

Nested backbones: the keras.io recipe ``keras.Model(model.inputs, [model.get_layer(name).output,
model.output])`` fails in Keras 3 when ``name`` lives inside a nested model (its output tensor
belongs to the inner model's graph). :func:`split_model` instead rebuilds the classifier's graph
with ``keras.models.clone_model(clone_function=identity)`` (same layers, same weights) and,
where the nested model is called, calls a two-output version of it ``[activation, output]``;
this recurses through any depth of nesting and works for any DAG (residual blocks included).

Speed: the gradient computations are ``tf.function`` graphs built once per (model, layer, image
shape), cached and never retraced (a ``None`` batch dimension in the input signature). Measured on
2 busy CPU cores, MobileNet alpha 0.25 at 224 px: the first Grad-CAM call costs ~1.9 s (graph
surgery + tracing), then 11 / 20 / 54 ms for 1 / 4 / 8 images against 290 / 230 / 420 ms for
the same code run eagerly; IG with 50 steps for 2 images takes 1.0 s (3.2 s eagerly).
"""

from __future__ import annotations

import difflib
import numbers
import warnings
import weakref
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers.keras_models import all_layers

Target = int | Sequence[int] | np.ndarray | None
DEFAULT_BATCH_SIZE = 32  # interpolated images per forward/backward in integrated_gradients

# model -> {(kind, layer, image shape): tf.function}; values do not reference their model
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def grad_cam(model: keras.Model, images, layer: str | None = None,
             target: Target = None) -> np.ndarray:
    """Grad-CAM maps [N, H, W] of the target's logit at ``layer``, upsampled to the input size.

    ``ReLU(sum_k alpha_k A^k)`` with ``alpha_k`` the spatial mean of ``d logit_t / d A^k``,
    computed per image (no averaging over the batch; the model runs in inference mode, so a map
    does not depend on the other images of the batch), then resized bilinearly to H x W.
    ``layer``: a layer name, at the top level or inside a nested model (None:
    :func:`last_conv_layer`). ``target``: None (predicted class), an int, or one int per image.
    An all-zero map (no positive evidence) is returned as zeros with a UserWarning.
    """
    x = _as_batch(images)
    name = layer if layer is not None else last_conv_layer(model)
    shape = tuple(x.shape[1:])
    fn = _cached(model, ("grad_cam", name, shape), lambda: _grad_cam_fn(model, name, shape))
    cams = fn(x, tf.constant(_targets(target, x.shape[0], _num_classes(model)))).numpy()
    empty = np.flatnonzero(cams.reshape(len(cams), -1).max(axis=1) <= 0)
    if empty.size:
        warnings.warn(f"Grad-CAM at {name!r}: all-zero map for image(s) {empty.tolist()} (no "
                      "positive evidence for the target at this layer); returned as zeros",
                      UserWarning, stacklevel=2)
    return cams


def last_conv_layer(model: keras.Model) -> str:
    """Name of the last layer with a 4-D output [N, h, w, k], looking inside nested models."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            try:
                return last_conv_layer(layer)
            except ValueError:
                pass
        if _rank(layer) == 4 and not isinstance(layer, keras.layers.InputLayer):
            return layer.name
    raise ValueError(f"model {model.name!r} has no layer with a 4-D output")


def layers_by_resolution(model: keras.Model) -> dict[tuple[int, int], str]:
    """The last layer with a 4-D output at each spatial size (h, w), nested models included.

    Sorted from the smallest maps (deepest layers) to the largest: candidate Grad-CAM layers,
    from semantic and coarse to detailed and less class-specific. Padding layers (their output
    is their input with a border) are skipped.
    """
    skip = (keras.layers.InputLayer, keras.layers.ZeroPadding2D)
    found: dict[tuple[int, int], str] = {}
    for layer in all_layers(model):
        if _rank(layer) == 4 and not isinstance(layer, skip):
            found[tuple(int(v) for v in layer.output.shape[1:3])] = layer.name
    return dict(sorted(found.items(), key=lambda item: item[0][0] * item[0][1]))


def split_model(model: keras.Model, layer: str) -> keras.Model:
    """A model ``images -> [activation of layer, model output]`` sharing ``model``'s weights.

    ``layer`` may be at the top level or inside nested models; an unknown name raises
    ValueError listing close matches and the layers with 4-D outputs.
    """
    path = _layer_path(model, layer)
    if path is None:
        raise ValueError(_unknown_layer_message(model, layer))
    return _split(model, path)


def integrated_gradients(model: keras.Model, images, target: Target = None, baseline=None,
                         steps: int = 50, batch_size: int | None = None,
                         method: str = "gausslegendre", return_gap: bool = False):
    """Integrated Gradients [N, H, W, C] of the target's logit, in raw-pixel space.

    ``IG = (x - x') * integral_0^1 grad f_t(x' + a (x - x')) da``. The integral uses
    ``method="gausslegendre"`` (default: ``steps`` Gauss-Legendre nodes mapped to [0, 1],
    exact for polynomials of degree < 2 * steps) or ``"trapezoid"`` (``steps`` equally spaced
    points, ends weighted by half). ``baseline`` x': None = black image (zeros: the models take
    raw [0, 255] pixels), or an array broadcastable to ``images``. The N x steps interpolated
    images go through the model in chunks of ``batch_size`` (default 32), so memory is bounded.
    With ``return_gap=True`` also returns ``gap[n] = sum(IG[n]) - (f_t(x_n) - f_t(x'_n))``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = _as_batch(images).numpy()
    ref = np.zeros_like(x) if baseline is None else np.broadcast_to(
        np.asarray(baseline, np.float32), x.shape).copy()
    shape = tuple(x.shape[1:])
    grad = _cached(model, ("gradient", None, shape), lambda: _gradient_fn(model, shape))
    logits = np.asarray(model(x, training=False))
    t = _targets(target, len(x), logits.shape[1])
    t = np.where(t < 0, logits.argmax(axis=1), t).astype(np.int32)
    attr = (x - ref) * _path_gradient(grad, x, ref, t, *quadrature(method, steps),
                                      batch_size or DEFAULT_BATCH_SIZE)
    if not return_gap:
        return attr
    rows = np.arange(len(x))
    delta = logits[rows, t] - np.asarray(model(ref, training=False))[rows, t]
    return attr, attr.reshape(len(x), -1).sum(axis=1) - delta


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``a_s`` in [0, 1] and weights ``w_s`` (summing to 1) of the path integral."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return ((nodes + 1) / 2).astype(np.float32), (weights / 2).astype(np.float32)
    if method == "trapezoid":
        if steps < 2:
            raise ValueError("the trapezoid rule needs steps >= 2")
        weights = np.full(steps, 1 / (steps - 1), np.float32)
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, steps, dtype=np.float32), weights
    raise ValueError(f"method must be 'gausslegendre' or 'trapezoid', got {method!r}")


def _path_gradient(grad: Callable, x: np.ndarray, ref: np.ndarray, t: np.ndarray,
                   alphas: np.ndarray, weights: np.ndarray, batch_size: int) -> np.ndarray:
    """``sum_s w_s grad f_t(ref + a_s (x - ref))`` per image, over chunks of images x steps."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total, steps = np.zeros_like(x), len(alphas)
    for start in range(0, len(x) * steps, batch_size):
        idx = np.arange(start, min(start + batch_size, len(x) * steps))
        img, step = idx // steps, idx % steps
        a = alphas[step][:, None, None, None]
        points = ref[img] + a * (x[img] - ref[img])
        g = grad(tf.constant(points), tf.constant(t[img])).numpy()
        g *= weights[step][:, None, None, None]
        for i in np.unique(img):
            total[i] += g[img == i].sum(axis=0)
    return total


def _grad_cam_fn(model: keras.Model, layer: str, shape: tuple) -> Callable:
    split = split_model(model, layer)
    if len(split.outputs[0].shape) != 4:
        raise ValueError(f"Grad-CAM needs a layer with a 4-D output [N, h, w, k]; {layer!r} "
                         f"gives shape {tuple(split.outputs[0].shape)}")

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def run(x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)  # frozen backbones have no watched variables
            acts, logits = split(x, training=False)
            t = tf.where(t < 0, tf.argmax(logits, axis=1, output_type=tf.int32), t)
            score = tf.reduce_sum(tf.gather(logits, t, batch_dims=1))
        grads = tape.gradient(score, acts)
        alpha = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)  # per image and channel
        cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1, keepdims=True))
        return tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]

    return run


def _gradient_fn(model: keras.Model, shape: tuple) -> Callable:
    """``d sum_n logit_{t_n}(x_n) / d x`` as a cached graph (holds the model weakly)."""
    ref = weakref.ref(model)

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def run(x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = ref()(x, training=False)
            score = tf.reduce_sum(tf.gather(logits, t, batch_dims=1))
        return tape.gradient(score, x)

    return run


def _cached(model: keras.Model, key: tuple, build: Callable[[], Callable]) -> Callable:
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def _split(model: keras.Model, path: list) -> keras.Model:
    """Two-output model for ``path`` = [nested model, ..., layer] (see the module docstring)."""
    model, first = _functional(model), path[0]
    inner = _split(first, path[1:]) if len(path) > 1 else None
    captured: list = []

    def call(layer, *args, **kwargs):
        if layer is not first:
            return layer(*args, **kwargs)
        if inner is None:
            captured.append(layer(*args, **kwargs))
            return captured[-1]
        activation, output = inner(*args, **kwargs)
        captured.append(activation)
        return output

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer,
                                     call_function=call)
    if len(captured) != 1:
        raise ValueError(f"layer {path[-1].name!r} runs {len(captured)} times in the model; "
                         "Grad-CAM needs a layer that runs exactly once")
    inputs = clone.inputs[0] if len(clone.inputs) == 1 else clone.inputs
    return keras.Model(inputs, [captured[0], clone.outputs[0]])


def _functional(model: keras.Model) -> keras.Model:
    """A Sequential model as an equivalent functional model (same layers); others unchanged."""
    if not isinstance(model, keras.Sequential):
        return model
    inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
    x = inputs
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _layer_path(model: keras.Model, name: str) -> list | None:
    """[layer] if ``name`` is a top-level layer, else [nested model, ..., layer], else None."""
    for layer in model.layers:
        if layer.name == name:
            return [layer]
    for layer in model.layers:
        if isinstance(layer, keras.Model) and (sub := _layer_path(layer, name)) is not None:
            return [layer, *sub]
    return None


def _unknown_layer_message(model: keras.Model, name: object, shown: int = 8) -> str:
    layers = all_layers(model)
    close = difflib.get_close_matches(str(name), [lyr.name for lyr in layers], n=5)
    conv = [lyr.name for lyr in layers
            if _rank(lyr) == 4 and not isinstance(lyr, keras.layers.InputLayer)]
    text = f"unknown layer {name!r}. "
    if close:
        text += f"Did you mean {', '.join(map(repr, close))}? "
    return text + (f"Layers with 4-D outputs (last {min(shown, len(conv))} of {len(conv)}, "
                   f"nested models included): {', '.join(conv[-shown:])}")


def _rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def _num_classes(model: keras.Model) -> int:
    return int(model.outputs[0].shape[-1])


def _as_batch(images) -> tf.Tensor:
    x = tf.convert_to_tensor(images)
    if x.shape.rank != 4:
        raise ValueError(f"images must be a batch [N, H, W, C], got shape {tuple(x.shape)}; "
                         "use images[None] for a single image")
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch")
    return tf.cast(x, tf.float32)


def _targets(target: Target, n: int, k: int) -> np.ndarray:
    """Class per image as int32 [n]; -1 means the predicted class (None)."""
    if target is None:
        return np.full(n, -1, np.int32)
    if isinstance(target, bool | np.bool_):
        raise ValueError("target must be an int class index, not a bool")
    if isinstance(target, numbers.Integral):
        t = np.full(n, int(target))
    else:
        t = np.asarray(target).reshape(-1)
        if t.dtype.kind not in "iu":
            raise ValueError(f"target must be None, an int or ints, got {target!r}")
    if t.shape != (n,):
        raise ValueError(f"target must have one class per image: expected {n}, got {t.shape}")
    if ((t < 0) | (t >= k)).any():
        raise ValueError(f"target out of range: the model has {k} outputs (0..{k - 1}), "
                         f"got {sorted(set(t[(t < 0) | (t >= k)].tolist()))}")
    return t.astype(np.int32)
