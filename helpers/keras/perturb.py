"""Image perturbations and a robustness table for the Keras track.

Lessons: ``13_entrenamiento_y_comparacion.ipynb`` and its reflection in
``15_analisis_de_errores_y_reflexion.ipynb``. Every
perturbation takes a batch of raw float images [N, H, W, 3] in [0, 255] (what the models of
:mod:`helpers.keras.models` take), a ``severity`` in its own unit (0 = unchanged) and a
stateless ``seed`` (an int or a shape-[2] tensor), and returns float32 images in [0, 255].
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from helpers.core.filters import gaussian_taps
from helpers.keras import models as keras_models
from helpers.keras.models import inference_graph as _graph

GRAY = 127.5  # occlusion fill: mid-gray in [0, 255]


def _seed(seed) -> tf.Tensor:
    if isinstance(seed, int | np.integer):
        seed = [int(seed), 0]
    return tf.cast(tf.reshape(tf.convert_to_tensor(seed), [2]), tf.int64)


def _clip(images: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(images, 0.0, 255.0)


def gaussian_noise(images, sigma: float, seed=0) -> tf.Tensor:
    """Add ``N(0, sigma^2)`` noise per pixel and channel (``sigma`` in gray levels), clip."""
    x = tf.cast(images, tf.float32)
    noise = tf.random.stateless_normal(tf.shape(x), _seed(seed), stddev=float(sigma))
    return _clip(x + noise)


def gaussian_blur(images, sigma: float, seed=0) -> tf.Tensor:
    """Gaussian blur of standard deviation ``sigma`` pixels (separable, mirrored borders).

    The kernel is the project's shared one (:func:`helpers.core.filters.gaussian_taps`): it sums
    to 1, so a flat image stays flat.
    """
    x = tf.cast(images, tf.float32)
    if sigma <= 0:
        return x
    channels = x.shape[-1]
    for axis in (1, 2):
        taps = gaussian_taps(sigma, int(x.shape[axis])).astype(np.float32)
        radius = (len(taps) - 1) // 2
        if radius == 0:
            continue
        kernel = taps[:, None] if axis == 1 else taps[None, :]
        kernel = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)))
        pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
        pad[axis] = [radius, radius]
        x = tf.nn.depthwise_conv2d(tf.pad(x, pad, mode="REFLECT"), kernel, [1, 1, 1, 1], "VALID")
    return _clip(x)


def brightness(images, delta: float, seed=0) -> tf.Tensor:
    """Add ``delta * 255`` to every pixel (``delta`` a fraction of the range), clip to [0, 255]."""
    return _clip(tf.cast(images, tf.float32) + 255.0 * float(delta))


def rotation(images, degrees: float, seed=0) -> tf.Tensor:
    """Rotate every image by ``degrees`` counter-clockwise about its centre (bilinear).

    Corners take reflected pixels (``fill_mode="reflect"``, as the Keras augmentation layers
    of :func:`helpers.keras.augment.augmentation_block`). 90 degrees equals ``np.rot90``.
    """
    x = tf.cast(images, tf.float32)
    if degrees == 0:
        return x
    shape = tf.shape(x)
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    # output pixel (x, y) samples the input at centre + R(a) (x - cx, y - cy); with y pointing
    # down this turns the picture counter-clockwise on screen
    transform = tf.stack([c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, 0.0, 0.0])
    transforms = tf.tile(transform[None], [shape[0], 1])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    return _clip(out)


def occlusion(images, fraction: float, seed=0, fill: float = GRAY) -> tf.Tensor:
    """Paint a gray square covering ``fraction`` of each image's area at a random position.

    The square's side is ``round(sqrt(fraction) * min(H, W))``; it lies fully inside the image,
    with its top-left corner drawn uniformly per image from ``seed``.
    """
    x = tf.cast(images, tf.float32)
    if fraction <= 0:
        return x
    n, h, w = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2])  # static height and width
    side = min(round(math.sqrt(fraction) * min(h, w)), h, w)
    s_y, s_x = tf.unstack(tf.random.experimental.stateless_split(_seed(seed), 2))
    top = tf.random.stateless_uniform([n], s_y, 0, h - side + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([n], s_x, 0, w - side + 1, dtype=tf.int32)
    rows, cols = tf.range(h)[None, :, None], tf.range(w)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + side)
              & (cols >= left[:, None, None]) & (cols < left[:, None, None] + side))
    return tf.where(inside[..., None], tf.constant(fill, tf.float32), x)


@dataclass(frozen=True)
class Perturbation:
    """A perturbation, the severities to test and how to label them (in Spanish, for figures)."""

    apply: Callable[..., tf.Tensor]  # apply(images, severity, seed)
    severities: tuple[float, ...]
    title: str
    unit: str


PERTURBATIONS = {
    "noise": Perturbation(gaussian_noise, (10.0, 25.0, 50.0), "ruido gaussiano",
                          "σ (niveles de gris)"),
    "blur": Perturbation(gaussian_blur, (1.0, 2.0, 4.0), "desenfoque", "σ (píxeles)"),
    "brightness": Perturbation(brightness, (0.2, 0.4, 0.6), "brillo",
                               "desplazamiento (fracción de 255)"),
    "rotation": Perturbation(rotation, (15.0, 30.0, 60.0), "rotación", "grados"),
    "occlusion": Perturbation(occlusion, (0.1, 0.25, 0.5), "oclusión",
                              "fracción del área tapada"),
}


def conditions(perturbations: Mapping[str, Perturbation]) -> list[tuple[str, float]]:
    """``[("none", 0.0), (name, severity), ...]``: the clean images first, then every severity."""
    return [("none", 0.0)] + [(name, float(s)) for name, p in perturbations.items()
                              for s in p.severities]


def robustness(models: keras.Model | Mapping[str, keras.Model], ds: tf.data.Dataset,
               perturbations: Mapping[str, Perturbation] | None = None, seed: int = 0,
               progress: bool = True, cache_key: Mapping | None = None) -> list[dict]:
    """Accuracy of each model on ``ds`` clean and under every perturbation and severity.

    ``ds`` yields (float images in [0, 255], labels integer or one-hot). Each perturbed batch
    is computed once (seed ``[seed, batch index]``) and given to every model. Classifiers of
    :func:`helpers.keras.models.build_classifier` share the backbone computation they have in
    common (the whole frozen backbone; everything below the unfrozen top of a fine-tuned one):
    identical logits, a fraction of the cost.
    Returns rows ``{"model", "perturbation", "severity", "accuracy", "n", "correct"}``
    (``correct``: 0/1 per image in ``ds`` order, for paired comparisons; :func:`correct_of`),
    clean rows (``perturbation="none"``) first.

    ``cache_key``: what identifies the models and ``ds`` (e.g. each checkpoint's sha256 and the
    split's size); with it, the rows are saved in the cache and reused by a later call with the
    same key, model names, perturbations and seed (notebooks 13 and 15 measure the same thing).
    A key with a None anywhere (an unsaved model) disables the reuse.
    """
    if isinstance(models, keras.Model):
        models = {models.name: models}
    perturbations = PERTURBATIONS if perturbations is None else perturbations
    path = _results_path(cache_key, list(models), perturbations, seed)
    if path is not None and path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # unreadable: measure again and overwrite
    rows = _measure(models, ds, perturbations, seed, progress)
    if path is not None:
        _write_atomically(path, json.dumps(rows))
    return rows


def _results_path(cache_key: Mapping | None, names: list[str],
                  perturbations: Mapping[str, Perturbation], seed: int) -> Path | None:
    """Where rows for this key are cached, or None when the key cannot identify them."""
    if cache_key is None or _has_none(cache_key):
        return None
    from helpers.data.resolve import cache_root

    ident = json.dumps({"key": cache_key, "models": names, "seed": seed, "version": 2,
                        "perturbations": {k: [p.apply.__name__, list(p.severities)]
                                          for k, p in perturbations.items()}},
                       sort_keys=True, default=str)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
    return cache_root() / "results" / f"robustness_{digest}.json"


def _has_none(value) -> bool:
    if isinstance(value, Mapping):
        return any(_has_none(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_none(v) for v in value)
    return value is None


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the reuse


def _measure(models: Mapping[str, keras.Model], ds: tf.data.Dataset,
             perturbations: Mapping[str, Perturbation], seed: int, progress: bool) -> list[dict]:
    conds = conditions(perturbations)
    predict = _shared_predictor(dict(models))
    right: list[list[list[np.ndarray]]] = [[[] for _ in models] for _ in conds]
    batches = int(ds.cardinality()) if int(ds.cardinality()) > 0 else None
    for b, (images, labels) in enumerate(tqdm(ds, total=batches, desc="robustez",
                                              disable=not progress)):
        labels = np.asarray(labels)
        labels = labels.argmax(1) if labels.ndim == 2 else labels
        for c, (name, severity) in enumerate(conds):
            x = images if name == "none" else perturbations[name].apply(
                images, severity, seed=tf.constant([seed, b], tf.int64))
            for m, logits in enumerate(predict(tf.cast(x, tf.float32))):
                right[c][m].append(np.asarray(logits).argmax(1) == labels)
    rows = []
    for c, (name, severity) in enumerate(conds):
        for m, model in enumerate(models):
            hits = np.concatenate(right[c][m]).astype(int)
            rows.append({"model": model, "perturbation": name, "severity": severity,
                         "accuracy": float(hits.mean()), "n": len(hits),
                         "correct": hits.tolist()})
    return rows


def _shared_predictor(models: dict[str, keras.Model]) -> Callable[[tf.Tensor], list]:
    """``f(images) -> [logits of each model]``, with the backbone computation they share done once.

    Classifiers that compute the same thing up to some backbone layer (:func:`~helpers.keras.
    models.shared_depth` with the first one: frozen backbones share all of it, fine-tuned ones
    everything below their first unfrozen layer) share one pass up to the deepest such ``cut``;
    then each distinct backbone runs its rest once and each model its head. Other models run
    whole.
    """
    members = list(models.values())
    cut, shared = _common_cut(members)
    groups: dict[str, list[int]] = {}
    for i in shared:
        groups.setdefault(keras_models.backbone_fingerprint(members[i]), []).append(i)
    plan = [(group, None if cut is None else _graph(keras_models.pooled_from(members[group[0]],
                                                                             cut)),
             [keras_models.head_from(members[i]) for i in group]) for group in groups.values()]
    stem = _graph(keras_models.feature_extractor(members[shared[0]], cut)) if shared else None
    alone = [(i, _graph(m)) for i, m in enumerate(members) if i not in shared]

    def predict(images: tf.Tensor) -> list:
        out: list = [None] * len(members)
        if stem is not None:
            common = stem(images)
            for group, rest, heads in plan:
                features = common if rest is None else rest(common)
                for i, head in zip(group, heads, strict=True):
                    out[i] = head(features, training=False)
        for i, run in alone:
            out[i] = run(images)
        return out

    return predict


def _common_cut(members: list[keras.Model]) -> tuple[str | None, list[int]]:
    """The backbone layer below which the classifiers share everything with the first one
    (None: the whole backbone) and which members share it."""
    classifiers = [i for i, m in enumerate(members) if keras_models.is_classifier(m)]
    if not classifiers:
        return None, []
    first = members[classifiers[0]]
    layers = keras_models.backbone_layers(first)
    depth = {i: keras_models.shared_depth(first, members[i]) for i in classifiers}
    shared = [i for i in classifiers if any(layer.weights for layer in layers[:depth[i]])]
    deepest = min(depth[i] for i in shared)
    if deepest == len(layers):
        return None, shared
    cut = layers[deepest].name
    try:
        keras_models.feature_extractor(first, cut)
    except ValueError:  # a skip connection crosses the cut: share only whole backbones
        return None, [i for i in shared if depth[i] == len(layers)]
    return cut, shared


def accuracy_of(rows: list[dict], model: str, perturbation: str = "none",
                severity: float = 0.0) -> float:
    """The accuracy in ``rows`` of one model under one perturbation and severity."""
    return _row(rows, model, perturbation, severity)["accuracy"]


def correct_of(rows: list[dict], model: str, perturbation: str = "none",
               severity: float | None = 0.0) -> np.ndarray:
    """Per-image correctness (bool [n]) of one model under one condition; with
    ``severity=None``, the mean over the perturbation's severities (float [n], in [0, 1])."""
    if severity is None:
        found = [np.asarray(r["correct"], bool) for r in rows
                 if (r["model"], r["perturbation"]) == (model, perturbation)]
        if not found:
            raise KeyError(f"no row for {model!r}, {perturbation!r}")
        return np.mean(found, axis=0)
    return np.asarray(_row(rows, model, perturbation, severity)["correct"], bool)


def _row(rows: list[dict], model: str, perturbation: str, severity: float) -> dict:
    for row in rows:
        if (row["model"], row["perturbation"]) == (model, perturbation) and \
                math.isclose(row["severity"], severity):
            return row
    raise KeyError(f"no row for {model!r}, {perturbation!r}, severity {severity}")


def mean_drop(rows: list[dict]) -> dict[str, float]:
    """Per model: clean accuracy minus its mean accuracy over all perturbed conditions."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        clean = accuracy_of(rows, model)
        perturbed = [r["accuracy"] for r in rows
                     if r["model"] == model and r["perturbation"] != "none"]
        out[model] = clean - float(np.mean(perturbed))
    return out

