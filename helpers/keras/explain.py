"""Grad-CAM and Integrated Gradients for Keras classifiers.

Lesson: ``14_grad_cam_e_integrated_gradients.ipynb``. Both explain the target's logit (the
pre-softmax score), take raw-pixel batches [N, H, W, C] (what the models of
:mod:`helpers.keras.models` take) and return numpy float32 arrays. Targets, baselines, the
quadrature rules and the path integral follow :mod:`helpers.core.attribution`, as the PyTorch
explainers do.

Nested backbones: the keras.io recipe ``keras.Model(model.inputs, [model.get_layer(name).output,
model.output])`` fails in Keras 3 when ``name`` lives inside a nested model (its output tensor
belongs to the inner model's graph). :func:`split_model` instead rebuilds the classifier's graph
with ``keras.models.clone_model(clone_function=identity)`` (same layers, same weights) and,
where the nested model is called, calls a two-output version of it ``[activation, output]``;
this recurses through any depth of nesting and works for any DAG (residual blocks included).

Speed: the gradient computations are ``tf.function`` graphs built once per (model, layer, image
shape), cached and never retraced (a ``None`` batch dimension in the input signature).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers.core.attribution import (
    check_baseline,
    path_integral,
    quadrature,
    resolve_targets,
    unknown_name_message,
)
from helpers.core.filters import default_sigma
from helpers.core.filters import gaussian_blur as blur_images
from helpers.core.validate import batch_size_or, require_finite
from helpers.keras.models import all_layers, graph_of, layer_path

Target = int | Sequence[int] | np.ndarray | None
DEFAULT_BATCH_SIZE = 32  # interpolated images per forward/backward in integrated_gradients
GRAY = 127.5  # mid-gray in raw [0, 255] pixels

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
    num_classes(model)  # one output of class scores, or a clear error
    x = as_batch(images)
    name = layer if layer is not None else last_conv_layer(model)
    shape = tuple(x.shape[1:])
    fn = _cached(model, ("grad_cam", name, shape), lambda: _grad_cam_fn(model, name, shape))
    cams = fn(x, tf.constant(targets_or_predicted(target, x.shape[0], model))).numpy()
    empty = np.flatnonzero(cams.reshape(len(cams), -1).max(axis=1) <= 0)
    if empty.size:
        # Spanish: the warning is read by students in the notebooks
        warnings.warn(f"Grad-CAM en {name!r}: mapa todo a cero para la(s) imagen(es) "
                      f"{empty.tolist()} (ninguna evidencia positiva de la clase objetivo en "
                      "esta capa); se devuelven ceros",
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
    path = layer_path(model, layer)
    if path is None:
        layers = all_layers(model)
        conv = [lyr.name for lyr in layers
                if _rank(lyr) == 4 and not isinstance(lyr, keras.layers.InputLayer)]
        raise ValueError(unknown_name_message(
            "layer", layer, [lyr.name for lyr in layers], conv, shown=8,
            note="(layers with 4-D outputs, nested models included)"))
    return _split(model, path)


def integrated_gradients(model: keras.Model, images, target: Target = None, baseline=None,
                         steps: int = 50, batch_size: int | None = None,
                         method: str = "gausslegendre", seed: int | None = None,
                         return_gap: bool = False):
    """Integrated Gradients [N, H, W, C] of the target's logit, in raw-pixel space.

    ``IG = (x - x') * integral_0^1 grad f_t(x' + a (x - x')) da``. The integral uses
    ``method="gausslegendre"`` (default: ``steps`` Gauss-Legendre nodes mapped to [0, 1],
    exact for polynomials of degree < 2 * steps), ``"trapezoid"`` (``steps`` equally spaced
    points, ends weighted by half) or a Riemann sum (``"riemann_left"``, ``"riemann_right"``,
    ``"riemann_middle"``). ``baseline`` x' (:func:`make_reference`): None or
    ``"black"`` (zeros: the models take raw [0, 255] pixels), ``"gray"``, ``"blur"``,
    ``"mean"``, ``"noise"`` (drawn with ``seed``) or an array broadcastable to ``images``. The
    N x steps interpolated images go through the model in chunks of ``batch_size`` (default 32),
    so memory is bounded. With ``return_gap=True`` also returns
    ``gap[n] = sum(IG[n]) - (f_t(x_n) - f_t(x'_n))``.
    """
    num_classes(model)
    x = as_batch(images).numpy()
    ref = make_reference(baseline, x, seed)
    alphas, weights = (v.astype(np.float32) for v in quadrature(method, steps))
    shape = tuple(x.shape[1:])
    grad = _cached(model, ("gradient", None, shape), lambda: _gradient_fn(model, shape))
    logits = np.asarray(model(x, training=False))
    t = resolve_targets(target, len(x), logits.shape[1])
    t = (logits.argmax(axis=1) if t is None else t).astype(np.int32)

    def gradient(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return grad(tf.constant(points), tf.constant(targets)).numpy()

    attr = (x - ref) * path_integral(gradient, x, ref, t, alphas, weights,
                                     batch_size_or(DEFAULT_BATCH_SIZE, batch_size),
                                     np.zeros_like(x))
    if not return_gap:
        return attr
    rows = np.arange(len(x))
    delta = logits[rows, t] - np.asarray(model(ref, training=False))[rows, t]
    return attr, attr.reshape(len(x), -1).sum(axis=1) - delta


def make_reference(baseline, images, seed: int | None = None) -> np.ndarray:
    """The reference images shaped like ``images`` [N, H, W, C], in raw pixels [0, 255].

    The same names as the PyTorch track (:func:`helpers.core.attribution.check_baseline`):
    None or ``"black"`` = 0, ``"gray"`` = 127.5, ``"blur"`` = the images blurred by a Gaussian
    of sigma ``max(H, W) / 8`` pixels (the shared kernel), ``"mean"`` = each image's mean colour,
    ``"noise"`` = uniform noise in [0, 255] drawn with ``seed``, or an array broadcastable to
    ``images``.
    """
    x = np.asarray(images, dtype=np.float32)
    name = check_baseline(baseline)
    if name is None:
        try:
            ref = np.broadcast_to(np.asarray(baseline, dtype=np.float32), x.shape).copy()
        except ValueError as err:
            raise ValueError(f"baseline of shape {np.shape(baseline)} does not broadcast to "
                             f"{x.shape}") from err
        require_finite("baseline", int((~np.isfinite(ref)).sum()), ref.size)
        return ref
    if name in ("black", "gray"):
        return np.full_like(x, 0.0 if name == "black" else GRAY)
    if name == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
    if name == "blur":
        return blur_images(x, default_sigma(*x.shape[1:3]), channels_last=True)
    return np.random.default_rng(seed).uniform(0.0, 255.0, x.shape).astype(np.float32)


def _grad_cam_fn(model: keras.Model, layer: str, shape: tuple) -> Callable:
    split = split_model(model, layer)
    if len(split.outputs[0].shape) != 4:
        raise ValueError(f"Grad-CAM needs a layer with a 4-D output [N, h, w, k]; {layer!r} "
                         f"gives shape {tuple(split.outputs[0].shape)}")
    return graph_of(_grad_cam_graph, split, input_signature=_signature(shape))


def _grad_cam_graph(split: keras.Model, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(x)  # frozen backbones have no watched variables
        acts, logits = split(x, training=False)
        t = tf.where(t < 0, tf.argmax(logits, axis=1, output_type=tf.int32), t)
        score = tf.reduce_sum(tf.gather(logits, t, batch_dims=1))
    grads = tape.gradient(score, acts)
    alpha = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)  # per image and channel
    cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1, keepdims=True))
    return tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]


def _gradient_fn(model: keras.Model, shape: tuple) -> Callable:
    """``d sum_n logit_{t_n}(x_n) / d x`` as a cached graph (holds the model weakly)."""
    return graph_of(_gradient_graph, weakref.ref(model), input_signature=_signature(shape))


def _gradient_graph(model_ref: weakref.ref, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model_ref()(x, training=False)
        score = tf.reduce_sum(tf.gather(logits, t, batch_dims=1))
    return tape.gradient(score, x)


def _signature(shape: tuple) -> list[tf.TensorSpec]:
    """A batch of any size of ``shape`` float32 images, and one int32 target per image."""
    return [tf.TensorSpec([None, *shape], tf.float32), tf.TensorSpec([None], tf.int32)]


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


def _rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def num_classes(model: keras.Model) -> int:
    """The number of class scores of a model with exactly one output [N, K]."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = [tuple(o.shape) for o in outputs]
        raise ValueError(f"the explainers need a model with one output of class scores [N, K]; "
                         f"{model.name!r} has outputs {shapes}. Wrap the one to explain: "
                         "keras.Model(model.inputs, model.outputs[i]).")
    return int(outputs[0].shape[-1])


def as_batch(images) -> tf.Tensor:
    x = tf.convert_to_tensor(images)
    if x.shape.rank != 4:
        raise ValueError(f"images must be a batch [N, H, W, C], got shape {tuple(x.shape)}; "
                         "use images[None] for a single image")
    if x.shape[0] == 0:
        raise ValueError("images is an empty batch")
    x = tf.cast(x, tf.float32)
    require_finite("images", int(tf.reduce_sum(tf.cast(~tf.math.is_finite(x), tf.int32))),
                   int(tf.size(x)))
    return x


def targets_or_predicted(target: Target, n: int, model: keras.Model) -> np.ndarray:
    """Class per image as int32 [n] (:func:`helpers.core.attribution.resolve_targets`);
    -1 stands for the predicted class (None), resolved inside the graph."""
    t = resolve_targets(target, n, num_classes(model))
    return np.full(n, -1, np.int32) if t is None else t.astype(np.int32)
