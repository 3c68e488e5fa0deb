"""Transfer-learning classifiers for Flowers102. Lesson: ``13_entrenamiento_y_comparacion.ipynb``.

:func:`build_classifier` gives a functional model
``image (raw [0, 255]) -> preprocess -> backbone -> pool -> dropout -> logits``, where
``backbone`` is a nested ``keras.applications`` model and ``preprocess`` is that backbone's own
``preprocess_input`` as a registered layer (:class:`Preprocess`): the whole model survives
``model.save("m.keras")`` / ``keras.models.load_model`` (with this module imported) as well as
``save_weights``/``load_weights``. The logits have no softmax: train with ``from_logits=True``.

Frozen backbone, fast path: compute the features once (:func:`extract_features`) and train only
the head on them (:func:`head_from`, see :mod:`helpers.keras.train`); the head shares its layers
with the model, so the model is trained when the head is. Fine-tuning the top of the backbone
takes the same path one level down: the activations entering the first unfrozen layer
(``cut``) are computed once and the layers above are trained on them. The layer names are the
constants below; :func:`find_layer` looks a name up inside nested models too.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers.data import fetch_weights

# The layers of a build_classifier model, input to output (their names in the model).
IMAGE, PREPROCESS, BACKBONE, POOL, DROPOUT, LOGITS = (
    "image", "preprocess", "backbone", "pool", "dropout", "logits")
CLASSIFIER_LAYERS = (PREPROCESS, BACKBONE, POOL, DROPOUT, LOGITS)


@dataclass(frozen=True)
class Backbone:
    """How to build one ``keras.applications`` backbone and where its ImageNet weights live."""

    constructor: str  # keras.applications.<constructor>
    module: str  # keras.applications.<module>.preprocess_input
    weights_name: str  # name for helpers.data.fetch_weights
    kwargs: tuple[tuple[str, float], ...] = ()


BACKBONES = {
    "mobilenet_v2": Backbone("MobileNetV2", "mobilenet_v2", "mobilenet_v2_imagenet"),
    "efficientnet_b0": Backbone("EfficientNetB0", "efficientnet", "efficientnet_b0_imagenet"),
    "mobilenet": Backbone("MobileNet", "mobilenet", "mobilenet_025_imagenet", (("alpha", 0.25),)),
}
PREPROCESSING = ("own", "efficientnet")


@keras.saving.register_keras_serializable(package="xai")
class Preprocess(keras.layers.Layer):
    """``keras.applications.<module>.preprocess_input`` as a layer: raw [0, 255] pixels in.

    ``module="mobilenet_v2"`` or ``"mobilenet"`` maps to [-1, 1]; ``"efficientnet"`` passes the
    pixels through unchanged (EfficientNet rescales and normalizes inside its own graph).
    """

    def __init__(self, module: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.module = module

    def call(self, images):
        fn = getattr(keras.applications, self.module).preprocess_input
        return fn(keras.ops.cast(images, self.compute_dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "module": self.module}


def build_classifier(backbone: str, num_classes: int, weights: str | Path | None = "imagenet",
                     trainable: bool = False, input_size: int = 224, dropout: float = 0.2,
                     preprocessing: str = "own") -> keras.Model:
    """A classifier on ``backbone`` (mobilenet_v2, efficientnet_b0 or mobilenet = alpha 0.25).

    ``weights``: ``"imagenet"`` (the file found by :func:`helpers.data.fetch_weights`, which
    raises :class:`~helpers.data.DataNotFoundError` when it is missing: the caller decides), a
    path to a no-top ``.h5``, or None (random). ``trainable`` sets ``backbone.trainable`` (see
    :func:`set_backbone_trainable`; with pretrained weights its BatchNorm layers stay frozen).

    ``preprocessing="own"`` puts the backbone's own ``preprocess_input`` inside the model.
    ``preprocessing="efficientnet"`` exists ONLY to reproduce, on purpose, the seed course's bug:
    MobileNetV2 fed EfficientNet's pass-through preprocessing, i.e. raw [0, 255] pixels into a
    network trained on [-1, 1]. Never use it for anything else.
    """
    spec = _spec(backbone)
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}")
    shape = (input_size, input_size, 3)
    base = getattr(keras.applications, spec.constructor)(
        include_top=False, weights=_weights_path(spec, weights), input_shape=shape,
        name=BACKBONE, **dict(spec.kwargs))
    module = spec.module if preprocessing == "own" else "efficientnet"
    inputs = keras.Input(shape, name=IMAGE)
    x = Preprocess(module, name=PREPROCESS)(inputs)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name=POOL)(x)
    x = keras.layers.Dropout(dropout, name=DROPOUT)(x)
    outputs = keras.layers.Dense(num_classes, name=LOGITS)(x)
    model = keras.Model(inputs, outputs, name=f"{backbone}_classifier")
    set_backbone_trainable(model, trainable, train_batchnorm=weights is None)
    return model


def set_backbone_trainable(model: keras.Model, trainable: bool,
                           train_batchnorm: bool = False) -> None:
    """Freeze or unfreeze the nested backbone; compile the model again afterwards.

    When unfreezing pretrained weights, BatchNorm layers stay frozen unless ``train_batchnorm``:
    a frozen Keras BatchNorm runs in inference mode (its ImageNet statistics), which fine-tuning
    on small batches needs. (In Keras 3 ``backbone(x, training=False)`` at build time does NOT do
    this: ``fit`` overrides it with ``training=True``.)
    """
    base = model.get_layer(BACKBONE)
    base.trainable = trainable
    if trainable and not train_batchnorm:
        for layer in all_layers(base):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def unfreeze_top(model: keras.Model, n_kernels: int) -> list[str]:
    """Make the top of the nested backbone trainable, from its ``n_kernels``-th last layer with a
    kernel (convolution) up; everything below stays frozen, and so does every BatchNorm layer
    (inference mode: its ImageNet statistics), as in keras.io's fine-tuning recipe. Returns the
    names of the trainable layers; compile the model again afterwards."""
    if isinstance(n_kernels, bool) or not isinstance(n_kernels, int) or n_kernels < 1:
        raise ValueError(f"n_kernels must be an int >= 1, got {n_kernels!r}")
    base = model.get_layer(BACKBONE)
    leaves = backbone_layers(model)
    kernels = [i for i, layer in enumerate(leaves)
               if any(len(w.shape) >= 2 for w in layer.weights)
               and not isinstance(layer, keras.layers.BatchNormalization)]
    start = kernels[-min(n_kernels, len(kernels))]
    base.trainable = True
    for i, layer in enumerate(leaves):
        layer.trainable = i >= start and not isinstance(layer, keras.layers.BatchNormalization)
    return [layer.name for layer in leaves if layer.trainable and layer.weights]


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, nested models included (each before its own layers)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(all_layers(layer))
    return found


def layer_path(model: keras.Model, name: str) -> list | None:
    """[layer] if ``name`` is a top-level layer, else [nested model, ..., layer], else None.

    Top-level layers win over nested ones of the same name.
    """
    for layer in model.layers:
        if layer.name == name:
            return [layer]
    for layer in model.layers:
        if isinstance(layer, keras.Model) and (sub := layer_path(layer, name)) is not None:
            return [layer, *sub]
    return None


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer | None:
    """The layer called ``name``: at the top level first, then inside nested models."""
    path = layer_path(model, name)
    return None if path is None else path[-1]


def is_classifier(model: keras.Model) -> bool:
    """Whether ``model`` has the layers of :func:`build_classifier` (and so its fast paths)."""
    return set(CLASSIFIER_LAYERS) <= {layer.name for layer in model.layers}


def backbone_fingerprint(model: keras.Model, cut: str | None = None) -> str:
    """A hash of what ``image -> features`` computes: preprocessing, input size, backbone weights.

    Two classifiers with the same fingerprint give identical features for every image. With
    ``cut`` (a backbone layer), of what ``image -> activations entering cut`` computes: only the
    weights below ``cut`` count (fine-tuning above it keeps the fingerprint).
    """
    digest = hashlib.sha1()
    digest.update(model.get_layer(PREPROCESS).module.encode())
    digest.update(str(tuple(model.input.shape)).encode())
    digest.update(str(cut).encode())
    for layer in backbone_layers(model)[:None if cut is None else _cut_index(model, cut)]:
        for weight in layer.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def feature_extractor(model: keras.Model, cut: str | None = None) -> keras.Model:
    """``image -> preprocess -> backbone -> pool``: the model up to the pooled features; with
    ``cut`` (a backbone layer), up to the activations that enter ``cut``."""
    if cut is None:
        return keras.Model(model.input, model.get_layer(POOL).output)
    below, _ = _split_backbone(model, cut)
    return keras.Model(model.input, below(model.get_layer(PREPROCESS).output))


def extract_features(model: keras.Model, ds: tf.data.Dataset,
                     cut: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled backbone features [N, D] of every batch of ``ds`` (with ``cut``: the activations
    entering that backbone layer), and its labels (None if absent).

    ``ds`` yields ``(images, labels)`` or images. Use a pipeline without augmentation: features
    are computed once, so a random augmentation would be frozen into them.
    """
    run = inference_graph(feature_extractor(model, cut))
    features, labels = [], []
    for batch in ds:
        images = batch[0] if isinstance(batch, tuple) else batch
        features.append(np.asarray(run(tf.cast(images, tf.float32))))
        if isinstance(batch, tuple):
            labels.append(np.asarray(batch[1]))
    return np.concatenate(features), (np.concatenate(labels) if labels else None)


def graph_of(fn: Callable, *bound, **options) -> Callable:
    """``tf.function(functools.partial(fn, *bound), **options)``: its own graph for each ``bound``.

    TensorFlow counts traces per Python code object, so a closure (or lambda) made for each model
    shares one counter with all the others, and tracing each once (a second "Run All", a cascade of
    randomized copies) prints its "triggered tf.function retracing" warning. A partial object is
    counted on its own.
    """
    return tf.function(functools.partial(fn, *bound), **options)


def inference_graph(model: keras.Model) -> Callable:
    """``model(x, training=False)`` as a graph that adapts to new batch sizes without retracing."""
    return graph_of(_infer, model, reduce_retracing=True)


def _infer(model: keras.Model, x: tf.Tensor) -> tf.Tensor:
    return model(x, training=False)


def head_from(model: keras.Model, cut: str | None = None) -> keras.Model:
    """``features [N, D] -> dropout -> logits`` made of the model's own layers (shared weights);
    with ``cut``, ``activations entering cut -> rest of the backbone -> pool -> dropout ->
    logits``: what fine-tuning above ``cut`` trains, on activations computed once."""
    if cut is None:
        inputs = keras.Input((model.get_layer(POOL).output.shape[-1],), name="features")
        x = inputs
    else:
        pooled = pooled_from(model, cut)
        inputs = keras.Input(pooled.input.shape[1:], name="activations")
        x = pooled(inputs)
    x = model.get_layer(DROPOUT)(x)
    return keras.Model(inputs, model.get_layer(LOGITS)(x), name="head")


def pooled_from(model: keras.Model, cut: str) -> keras.Model:
    """``activations entering cut -> rest of the backbone -> pool`` (the model's own layers)."""
    _, above = _split_backbone(model, cut)
    inputs = keras.Input(above.input.shape[1:], name="activations")
    return keras.Model(inputs, model.get_layer(POOL)(above(inputs)), name="above_cut")


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers in graph order, nested models unpacked (what ``cut`` names)."""
    base = model.get_layer(BACKBONE)
    return [layer for layer in all_layers(base) if not isinstance(layer, keras.Model)]


def shared_depth(a: keras.Model, b: keras.Model) -> int:
    """How many leading backbone layers of two classifiers compute the same thing (same name
    except input layers, identical weights): 0 when their preprocessing or input size differ.
    A fine-tuned model and its frozen original share everything below the first unfrozen
    layer."""
    if (a.get_layer(PREPROCESS).module != b.get_layer(PREPROCESS).module
            or tuple(a.input.shape) != tuple(b.input.shape)):
        return 0
    depth = 0
    for la, lb in zip(backbone_layers(a), backbone_layers(b), strict=False):
        same = (la.name == lb.name or isinstance(la, keras.layers.InputLayer)) and len(
            la.weights) == len(lb.weights) and all(
            np.array_equal(keras.ops.convert_to_numpy(wa), keras.ops.convert_to_numpy(wb))
            for wa, wb in zip(la.weights, lb.weights, strict=True))
        if not same:
            break
        depth += 1
    return depth


def _cut_index(model: keras.Model, cut: str) -> int:
    names = [layer.name for layer in backbone_layers(model)]
    if cut not in names:
        raise ValueError(f"cut {cut!r} is not a layer of the backbone; valid: {', '.join(names)}")
    return names.index(cut)


def _split_backbone(model: keras.Model, cut: str) -> tuple[keras.Model, keras.Model]:
    """The backbone below ``cut`` (input -> activations entering ``cut``) and from ``cut`` up,
    made of its own layers. Raises ValueError when something above ``cut`` also reads a tensor
    from below it (a skip connection crossing the cut)."""
    _cut_index(model, cut)
    base = model.get_layer(BACKBONE)
    middle = base.get_layer(cut).input
    try:
        above = keras.Model(middle, base.output)
    except ValueError as err:
        raise ValueError(f"cannot split the backbone at {cut!r}: a connection crosses it "
                         f"({err}); choose a layer that every later layer depends on only "
                         "through its input") from None
    return keras.Model(base.input, middle), above


def _spec(backbone: str) -> Backbone:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[backbone]


def _weights_path(spec: Backbone, weights: str | Path | None) -> str | None:
    """The weight file to pass to keras.applications (raises DataNotFoundError if missing)."""
    if weights is None:
        return None
    if weights == "imagenet":
        return str(fetch_weights(spec.weights_name))
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weight file {weights} does not exist")
    return str(weights)
