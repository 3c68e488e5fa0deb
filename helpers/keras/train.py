"""Training, evaluation and cached weights for the Flowers102 classifiers (Keras track).

Lesson: ``13_entrenamiento_y_comparacion.ipynb`` (then
``14_grad_cam_e_integrated_gradients.ipynb`` and ``15_analisis_de_errores_y_reflexion.ipynb``
load the models it trained). Labels are one-hot everywhere and the loss is
``CategoricalCrossentropy(from_logits=True)``, so the soft labels of Mixup/CutMix and the hard
labels of validation go through the same loss.

Frozen backbone: the models of :func:`helpers.keras.models.build_classifier` keep their ImageNet
backbone frozen (inference mode) while their head trains, so their logits are
``head(features)`` with features that depend only on the image. That allows two shortcuts, both
exact:

- the baseline (no augmentation) trains its head on features computed once
  (:meth:`FlowersSplits.features`);
- validation and test use the cached features of their (never augmented) images, also while a
  variant trains on an augmented image pipeline (:class:`FeatureValidation`).

Augmentation, Mixup and CutMix change the input images every epoch, so those variants run the
frozen backbone on every training batch. ``finetune`` (:func:`fine_tune`) then trains the top of
its backbone too, validated on images; features are cached per backbone fingerprint, so a
fine-tuned model gets features of its own and :func:`predict_proba` stays exact.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import checkpoints
from helpers.core.stats import stratified_sample
from helpers.core.training import TrainResult, announce_duration
from helpers.data import load_flowers102
from helpers.keras import augment, pipeline
from helpers.keras import models as keras_models
from helpers.profile import Profile

VARIANTS = ("baseline", "augment", "mixup", "cutmix", "baseline_long", "finetune",
            "augment_finetune")
TITLES = {"baseline": "modelo base", "augment": "aumento (capas Keras)", "mixup": "Mixup",
          "cutmix": "CutMix", "baseline_long": "modelo base, presupuesto largo",
          "finetune": "ajuste fino", "augment_finetune": "aumento + ajuste fino"}  # for notebooks
# Variants whose training runs on features computed once (cheap: more seeds in the fast profile)
ON_FEATURES = ("baseline", "baseline_long")
FINE_TUNED = ("finetune", "augment_finetune")
BACKBONE_BY_PROFILE = {"fast": "mobilenet", "full": "mobilenet_v2"}
CACHE_VERSION = 3  # bump when training code changes what a checkpoint means


def backbone_for(profile: Profile) -> str:
    """The backbone of a profile: ``mobilenet_v2`` in ``full``, MobileNet alpha 0.25 in ``fast``.

    The only place where the choice is made. ``fast`` uses MobileNet 0.25 because its ImageNet
    weights ship with the course data (MobileNetV2's need a download) and it runs about twice
    as fast as MobileNetV2 on a CPU.
    """
    return BACKBONE_BY_PROFILE[profile.name]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (a cached checkpoint must match all of it)."""

    variant: str  # one of VARIANTS
    backbone: str
    epochs: int  # maximum; early stopping may end sooner
    batch_size: int
    preprocessing: str = "own"  # "efficientnet" only for the seed course's bug
    learning_rate: float = 1e-2
    patience: int = 4  # epochs without a better validation accuracy before stopping
    dropout: float = 0.2
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    fine_tune_epochs: int = 5  # second stage of "finetune" (the profile sets it)
    fine_tune_kernels: int = 4  # convolutions unfrozen from the top of the backbone
    # 100x below the head's: with the head's high 1e-2, a 10x step down (1e-3) still wrecked the
    # pretrained features in the fast profile (validation fell on the first fine-tuning epoch)
    fine_tune_learning_rate: float = 1e-4
    size: int = 224
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")


def config_for(profile: Profile, variant: str, preprocessing: str = "own",
               size: int = 224, seed: int = 0) -> TrainConfig:
    """The training configuration of ``variant`` under ``profile`` (sizes from the profile).

    Equal budgets: ``baseline_long`` trains the head alone for as many epochs as the two stages
    of the fine-tuned variants together (its control), the others for ``flowers_epochs``.
    """
    epochs = profile.flowers_epochs + (profile.flowers_finetune_epochs
                                       if variant == "baseline_long" else 0)
    return TrainConfig(variant, backbone_for(profile), epochs, profile.flowers_batch_size,
                       preprocessing, size=size, seed=seed,
                       fine_tune_epochs=profile.flowers_finetune_epochs)


def seeds_for(profile: Profile, variant: str) -> list[int]:
    """Training seeds of ``variant``: more for the cheap variants trained on features."""
    n = (profile.flowers_seeds_features if variant in ON_FEATURES
         else profile.flowers_seeds_images)
    return list(range(n))


@dataclass
class Features:
    """Pooled backbone features of a split, with one-hot labels."""

    x: np.ndarray  # [N, D]
    y: np.ndarray  # [N, K] one-hot float32
    seconds: float  # time it took to compute them

    @property
    def labels(self) -> np.ndarray:
        return self.y.argmax(axis=1)


class FlowersSplits:
    """Flowers102 train/validation/test at a profile's sizes: pipelines and cached features.

    Subsets are class-balanced (see :func:`helpers.data.load_flowers102`). Features are cached
    per split and :func:`helpers.keras.models.backbone_fingerprint`, so models sharing a frozen
    backbone share them.
    ``splits`` replaces the loader: ``{split: (dataset of (uint8 image, int label), info)}``
    with ``info`` like :class:`helpers.data.flowers102.FlowersInfo` (tests, other data).
    """

    def __init__(self, profile: Profile, size: int = 224, seed: int = 0,
                 splits: dict | None = None) -> None:
        self.profile, self.size, self.seed = profile, size, seed
        if splits is None:
            sizes = {"train": profile.flowers_train_size, "validation": profile.flowers_val_size,
                     "test": profile.flowers_test_size}
            splits = {split: load_flowers102(split, n=n, seed=seed) for split, n in sizes.items()}
        self.datasets = {split: ds for split, (ds, _) in splits.items()}
        self.infos = {split: info for split, (_, info) in splits.items()}
        self.class_names = self.infos["train"].class_names
        self.num_classes = len(self.class_names)
        self._features: dict[tuple[str, str], Features] = {}
        self._labels: dict[str, np.ndarray] = {}

    def pipeline(self, split: str, training: bool = False, augment: Callable | None = None,
                 mix: Callable | None = None, seed: int | None = None,
                 indices=None) -> tf.data.Dataset:
        """Batches of (float32 images in [0, 255], one-hot labels); see ``make_pipeline``.

        ``seed`` (default: the data seed) sets the shuffling and the mixes of a training run;
        ``indices`` keeps only those images of the split (in split order).
        """
        ds = self.datasets[split]
        if indices is not None:
            keep = tf.constant(np.unique(np.asarray(indices, np.int64)))
            ds = ds.enumerate().filter(lambda i, xy: tf.reduce_any(tf.equal(i, keep)))
            ds = ds.map(lambda i, xy: xy)
        return pipeline.make_pipeline(ds, self.profile.flowers_batch_size, training=training,
                                     augment=augment, mix=mix, one_hot=self.num_classes,
                                     size=self.size, seed=self.seed if seed is None else seed,
                                     cache=indices is None)

    def robustness_indices(self) -> np.ndarray | None:
        """Validation images of the robustness study: ``profile.robustness_images`` of them,
        class-balanced (None: the whole split)."""
        n = self.profile.robustness_images
        labels = self.labels("validation")
        return None if n is None or n >= len(labels) else stratified_sample(labels, n, seed=0)

    def labels(self, split: str) -> np.ndarray:
        """Integer labels of a split, in pipeline order."""
        if split not in self._labels:
            batches = self.datasets[split].map(lambda x, y: y).batch(4096)
            self._labels[split] = np.concatenate([b.numpy() for b in batches])
        return self._labels[split]

    def images(self, split: str, indices) -> np.ndarray:
        """uint8 images [n, size, size, 3] of a split at ``indices`` (in that order)."""
        indices = [int(i) for i in np.atleast_1d(indices)]
        wanted, found = set(indices), {}
        resized = self.datasets[split].map(lambda x, y: pipeline.resize(x, y, self.size))
        for i, (image, _) in enumerate(resized):
            if i in wanted:
                found[i] = image.numpy()
                if len(found) == len(wanted):
                    break
        return np.stack([found[i] for i in indices])

    def features(self, split: str, model: keras.Model, cut: str | None = None) -> Features:
        """Pooled features of ``split`` through ``model``'s preprocessing and backbone (cached);
        with ``cut``, the activations entering that backbone layer."""
        key = (split, keras_models.backbone_fingerprint(model, cut))
        if key not in self._features:
            start = time.monotonic()
            x, y = keras_models.extract_features(model, self.pipeline(split), cut)
            self._features[key] = Features(x, y, time.monotonic() - start)
        return self._features[key]


class FeatureValidation(keras.callbacks.Callback):
    """Adds ``val_loss``/``val_accuracy`` from cached validation features at each epoch's end.

    Exact for a frozen backbone (the model's logits are ``head(features)``). Put it before
    ``EarlyStopping`` in the callback list: later callbacks (and the History) see its values.
    """

    def __init__(self, head: keras.Model, features: Features) -> None:
        super().__init__()
        self.head, self.features = head, features
        self.loss = keras.losses.CategoricalCrossentropy(from_logits=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        loss, acc = soft_label_metrics(self.head, self.features.x, self.features.y)
        logs["val_loss"], logs["val_accuracy"] = loss, acc


def soft_label_metrics(model: keras.Model, x: np.ndarray, y: np.ndarray,
                       batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy on logits and accuracy (argmax vs argmax of the labels) of ``model``."""
    logits = _logits(model, x, batch_size)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)(y, logits)
    return float(loss), float((logits.argmax(1) == y.argmax(1)).mean())


def compile_classifier(model: keras.Model, learning_rate: float) -> None:
    """Adam + ``CategoricalCrossentropy(from_logits=True)`` + accuracy (labels are one-hot)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def train_classifier(model: keras.Model, train: tf.data.Dataset | Features,
                     val: tf.data.Dataset | Features, epochs: int, learning_rate: float = 1e-2,
                     patience: int = 4, batch_size: int = 32, seed: int = 0,
                     verbose: int = 2, cut: str | None = None) -> TrainResult:
    """Train with early stopping on validation accuracy; the model keeps its best epoch.

    ``train``: a pipeline of (images, one-hot labels), or :class:`Features` (then only the head
    is trained, on the cached features; with ``cut``, the features are the activations entering
    that backbone layer and the layers from it up are trained). ``val``: a pipeline or
    :class:`Features` (at the same ``cut``). Early
    stopping monitors ``val_accuracy`` with ``patience`` and ``restore_best_weights=True`` (the
    first epoch with the highest value wins).
    """
    keras.utils.set_random_seed(seed)
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                            patience=patience, restore_best_weights=True)
    callbacks: list = [stopper]
    if isinstance(train, Features):
        net = keras_models.head_from(model, cut)
        if not isinstance(val, Features):
            raise ValueError("training on features needs validation features too")
        kwargs = {"x": train.x, "y": train.y, "batch_size": batch_size, "shuffle": True,
                  "validation_data": (val.x, val.y)}
    else:
        net = model
        kwargs = {"x": train, "shuffle": False}  # the pipeline shuffles
        if isinstance(val, Features):
            callbacks.insert(0, FeatureValidation(keras_models.head_from(model, cut), val))
        else:
            kwargs["validation_data"] = val
    compile_classifier(net, learning_rate)
    start = time.monotonic()
    history = net.fit(epochs=epochs, callbacks=callbacks, verbose=verbose, **kwargs)
    return TrainResult.from_history(history.history, time.monotonic() - start)


def build_for(config: TrainConfig, num_classes: int, weights="imagenet") -> keras.Model:
    """A frozen-backbone classifier as ``config`` describes it."""
    return keras_models.build_classifier(config.backbone, num_classes, weights=weights,
                                         input_size=config.size, dropout=config.dropout,
                                         preprocessing=config.preprocessing)


def train_variant(config: TrainConfig, data: FlowersSplits, verbose: int = 2, say=print,
                  allow_long: bool = False) -> tuple[keras.Model, TrainResult]:
    """Build and train one variant: baseline on cached features, the others on image batches.

    ``augment``: :func:`helpers.keras.augment.augmentation_block`; ``mixup``/``cutmix``: those
    mixes on the plain images (each technique alone, so their effects can be compared);
    ``baseline_long``: the baseline with the fine-tuning's total epochs; ``finetune`` and
    ``augment_finetune``: the head on features, then :func:`fine_tune` on plain or augmented
    images (the only difference between the two). ``seconds`` include extracting the training
    features. ``config.seed`` sets the initialization, dropout, shuffling and augmentation.
    Before training it says how long the run should take (:func:`estimate_seconds`, from the
    validation features' measured cost) and, on a CPU, refuses a run longer than
    :data:`helpers.core.training.LONG_MINUTES` unless ``allow_long`` or ``$XAI_ALLOW_LONG=1``.
    """
    keras.utils.set_random_seed(config.seed)
    model = build_for(config, data.num_classes)
    val = data.features("validation", model)
    announce_duration(estimate_seconds(config, data, val.seconds / max(len(val.x), 1)),
                      f"«{TITLES[config.variant]}»", not tf.config.list_physical_devices("GPU"),
                      say, allow_long)
    common = {"epochs": config.epochs, "learning_rate": config.learning_rate,
              "patience": config.patience, "batch_size": config.batch_size,
              "seed": config.seed, "verbose": verbose}
    if config.variant in ON_FEATURES + FINE_TUNED:
        train = data.features("train", model)
        result = train_classifier(model, train, val, **common)
        result.seconds += train.seconds
        if config.variant in FINE_TUNED:
            result = fine_tune(model, config, data, result, verbose)
        return model, result
    mixes = {"mixup": functools.partial(augment.mixup, alpha=config.mixup_alpha),
             "cutmix": functools.partial(augment.cutmix, alpha=config.cutmix_alpha)}
    batches = data.pipeline(
        "train", training=True, mix=mixes.get(config.variant), seed=config.seed,
        augment=augment.augmentation_block(seed=config.seed)
        if config.variant == "augment" else None)
    return model, train_classifier(model, batches, val, **common)


def estimate_seconds(config: TrainConfig, data: FlowersSplits, per_image: float) -> float:
    """Seconds :func:`train_variant` should take, from ``per_image``, the measured cost of one
    image through preprocessing and backbone: one pass over the training images for the
    variants trained on cached features, twice that per epoch for those trained on augmented or
    mixed image batches, three times per fine-tuning epoch when the images go through a
    backbone that learns (``augment_finetune``; ``finetune`` trains on cached activations)."""
    n = data.infos["train"].num_examples
    if config.variant in ON_FEATURES:
        return n * per_image
    if config.variant in FINE_TUNED:
        per_epoch = 3 if config.variant == "augment_finetune" else 1
        return n * per_image * (1 + per_epoch * config.fine_tune_epochs)
    return 2 * n * per_image * config.epochs


def fine_tune(model: keras.Model, config: TrainConfig, data: FlowersSplits, head: TrainResult,
              verbose: int = 2) -> TrainResult:
    """Second stage of keras.io's transfer-learning recipe, after the head (``head``) is trained.

    The top ``config.fine_tune_kernels`` convolutions of the backbone are unfrozen (BatchNorm
    stays in inference mode, :func:`helpers.keras.models.unfreeze_top`) and trained with the
    head, at ``config.fine_tune_learning_rate``, with early stopping. The layers below the
    first unfrozen one (``cut``) do not change, so validation (and the training of ``finetune``)
    runs on the activations entering ``cut``, computed once; ``augment_finetune`` trains on
    augmented image batches through the whole model. The model keeps the best epoch of both
    stages (the head's if fine-tuning never beats it); the history runs through both.
    """
    head_weights = {v.path: v.numpy() for v in model.weights}
    cut = keras_models.unfreeze_top(model, config.fine_tune_kernels)[0]
    val = data.features("validation", model, cut)  # the layers below cut stay frozen
    if config.variant == "augment_finetune":  # new images every epoch: through the whole model
        train = data.pipeline("train", training=True, seed=config.seed,
                              augment=augment.augmentation_block(seed=config.seed))
    else:
        train = data.features("train", model, cut)
    second = train_classifier(model, train, val, epochs=config.fine_tune_epochs,
                              learning_rate=config.fine_tune_learning_rate,
                              patience=config.patience, batch_size=config.batch_size,
                              seed=config.seed, verbose=verbose, cut=cut)
    keras_models.set_backbone_trainable(model, False)
    history = {k: head.history[k] + second.history[k] for k in head.history if k in second.history}
    history["stage"] = [1.0] * head.epochs_run + [2.0] * second.epochs_run
    result = TrainResult.from_history(history, head.seconds + second.seconds)
    if result.best_epoch <= head.epochs_run:  # fine-tuning never beat the head alone
        for var in model.weights:
            var.assign(head_weights[var.path])
    return result


def checkpoint_stem(profile: Profile, variant: str, preprocessing: str = "own",
                    seed: int = 0) -> str:
    """File name stem of a variant's cached weights, e.g. ``flowers_fast_cutmix`` (seed 0) or
    ``flowers_fast_cutmix_s1``."""
    bug = "" if preprocessing == "own" else f"_pre-{preprocessing}"
    return f"flowers_{profile.name}_{variant}{bug}{f'_s{seed}' if seed else ''}"


def run_key(config: TrainConfig, data: FlowersSplits) -> dict:
    """The facts that identify a run: a checkpoint is reused only if they all match."""
    return {**asdict(config), "n_train": data.infos["train"].num_examples,
            "n_val": data.infos["validation"].num_examples, "data_seed": data.seed,
            "version": CACHE_VERSION}


def load_weights(path, config: TrainConfig, num_classes: int) -> keras.Model:
    """The classifier of ``config`` holding the weights saved at ``path`` (checked finite)."""
    model = build_for(config, num_classes, weights=None)
    model.load_weights(path)
    checkpoints.require_finite((v.path, keras.ops.convert_to_numpy(v)) for v in model.weights)
    return model


def load_or_train(variant: str, data: FlowersSplits, preprocessing: str = "own",
                  force: bool = False, verbose: int = 2, say=print,
                  seed: int = 0, allow_long: bool = False) -> tuple[keras.Model, dict]:
    """The ``variant`` trained for ``data``'s profile: a verified checkpoint, else trained now.

    Looks for ``<stem>.weights.h5`` (:func:`checkpoint_stem`) in ``$XAI_DATA_DIR/checkpoints``
    (shipped, read-only) and then in the cache (:func:`helpers.checkpoints.load_first`); a
    checkpoint is used only when its :func:`run_key` equals this run's. ``force=True`` retrains;
    ``seed`` picks one of the variant's training runs (:func:`seeds_for`).
    Returns ``(model, meta)``; ``meta`` holds the key, the :class:`TrainResult` fields, the
    profile and ``"from_cache"``.
    """
    config = config_for(data.profile, variant, preprocessing, data.size, seed)
    key = run_key(config, data)
    stem = checkpoint_stem(data.profile, variant, preprocessing, seed)
    if not force:
        found = checkpoints.load_first(
            stem, ".weights.h5", key, lambda path: load_weights(path, config, data.num_classes),
            say)
        if found is not None:
            return found[0], {**found[1], "from_cache": True}
    problem = checkpoints.cache_problem()
    if problem:
        say(f"Aviso: {problem}.")
    model, result = train_variant(config, data, verbose=verbose, say=say,
                                  allow_long=allow_long)
    meta = {"key": key, "profile": data.profile.name, **asdict(result)}
    if problem is None:
        meta.update(checkpoints.save_or_keep(stem, ".weights.h5", lambda: weights_bytes(model),
                                             meta, say))
    return model, {**meta, "from_cache": False}


def weights_bytes(model: keras.Model) -> bytes:
    """The bytes of ``model.save_weights("x.weights.h5")``, made in memory: h5py never touches
    the disk, so a full disk cannot leave h5py objects whose finalizers crash the process."""
    from keras.src.saving import saving_lib  # keras is pinned; a test checks the format

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


def predict_proba(model: keras.Model, data: FlowersSplits, split: str) -> np.ndarray:
    """Softmax probabilities [N, K] of a split: the head on the split's features through this
    model's own preprocessing and backbone (cached per backbone fingerprint; inference mode)."""
    logits = _logits(keras_models.head_from(model), data.features(split, model).x)
    return np.asarray(tf.nn.softmax(logits))


def _logits(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """``model(x)`` in inference mode, in chunks (no ``predict``: no retracing per new head)."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])
