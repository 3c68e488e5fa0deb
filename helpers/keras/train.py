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
  variant trains on an augmented image pipeline (:func:`train_classifier`).

Augmentation, Mixup and CutMix change the input images every epoch, so those variants run the
frozen backbone on every training batch. ``finetune`` (:func:`fine_tune`) then trains the top of
its backbone too, validated on images; features are cached per backbone fingerprint, so a
fine-tuned model gets features of its own and :func:`predict_proba` stays exact.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import checkpoints
from helpers.core.spanish import num, pct
from helpers.core.stats import stratified_sample
from helpers.core.training import EpochWatch, TrainResult, announce_duration
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
CACHE_VERSION = 4  # bump when training code changes what a checkpoint means
ARRAY_LISTS = ("variables", "optimizer", "best", "head")  # the arrays of a training state


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
        self._resized: dict[str, tf.data.Dataset] = {}

    def pipeline(self, split: str, training: bool = False, augment: Callable | None = None,
                 mix: Callable | None = None, seed: int | None = None,
                 indices=None) -> tf.data.Dataset:
        """Batches of (float32 images in [0, 255], one-hot labels); see ``make_pipeline``.

        ``seed`` (default: the data seed) sets the shuffling and the mixes of a training run;
        ``indices`` keeps only those images of the split (in split order).
        """
        ds, size = self.datasets[split], self.size
        if indices is not None:
            keep = tf.constant(np.unique(np.asarray(indices, np.int64)))
            ds = ds.enumerate().filter(lambda i, xy: tf.reduce_any(tf.equal(i, keep)))
            ds = ds.map(lambda i, xy: xy)
        elif training:  # one resized, cached copy for every epoch's pipeline
            if split not in self._resized:
                self._resized[split] = ds.map(lambda x, y: pipeline.resize(x, y, self.size),
                                              num_parallel_calls=tf.data.AUTOTUNE).cache()
            ds, size = self._resized[split], None
        return pipeline.make_pipeline(ds, self.profile.flowers_batch_size, training=training,
                                     augment=augment, mix=mix, one_hot=self.num_classes,
                                     size=size, seed=self.seed if seed is None else seed,
                                     cache=indices is None and size is not None)

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


def train_classifier(model: keras.Model,
                     train: Features | tf.data.Dataset | Callable[[int], tf.data.Dataset],
                     val: tf.data.Dataset | Features, epochs: int, learning_rate: float = 1e-2,
                     patience: int = 4, batch_size: int = 32, seed: int = 0,
                     verbose: int = 2, cut: str | None = None, state: dict | None = None,
                     keep: Callable[[dict], object] | None = None,
                     watch: EpochWatch | None = None) -> TrainResult:
    """Train with early stopping on validation accuracy; the model keeps its best epoch.

    ``train``: :class:`Features` (then only the head is trained, on the cached features; with
    ``cut``, the features are the activations entering that backbone layer and the layers from
    it up are trained), or image batches: a function ``epoch -> pipeline`` (reproducible epoch
    by epoch, so a resumed run sees the data an uninterrupted one sees) or one pipeline.
    ``val``: :class:`Features` (at the same ``cut``; exact for a frozen backbone, the logits are
    ``head(features)``) or a pipeline. Early stopping: after ``patience`` epochs without a
    higher validation accuracy; the first epoch with the highest value wins and is restored.

    One ``fit`` per epoch, with every random generator seeded from ``(seed, epoch)``. After each
    epoch ``keep(state)`` receives everything needed to go on (weights, optimizer, best weights,
    patience count, history); ``train_classifier(..., state=that)`` continues from there and
    ends with the weights an uninterrupted run gives. ``watch`` warns when an epoch runs far
    past its estimate.
    """
    keras.utils.set_random_seed(seed)
    on_features = isinstance(train, Features)
    if on_features and not isinstance(val, Features):
        raise ValueError("training on features needs validation features too")
    net = keras_models.head_from(model, cut) if on_features else model
    scorer = _validation(model, net, val, cut)
    compile_classifier(net, learning_rate)
    net.optimizer.build(net.trainable_variables)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [],
                                       "val_accuracy": []}
    best, wait, first, spent = None, 0, 0, 0.0
    if state is not None:
        _assign(net.variables, state["variables"])
        _assign(net.optimizer.variables, state["optimizer"])
        history, best, wait = state["history"], state["best"], state["wait"]
        first, spent = state["epoch"], state["seconds"]
    start = time.monotonic() - spent
    for epoch in range(first, epochs):
        if wait >= patience:
            break
        keras.utils.set_random_seed(_epoch_seed(seed, epoch))
        with watch.epoch(epoch + 1, epochs) if watch else contextlib.nullcontext():
            if on_features:
                fit = net.fit(train.x, train.y, batch_size=batch_size, shuffle=True, verbose=0)
            else:
                batches = train(epoch) if callable(train) else train
                fit = net.fit(batches, shuffle=False, verbose=0)  # the pipeline shuffles
            val_loss, val_acc = scorer()
        better = not history["val_accuracy"] or val_acc > max(history["val_accuracy"])
        for name, value in (("loss", fit.history["loss"][0]),
                            ("accuracy", fit.history["accuracy"][0]),
                            ("val_loss", val_loss), ("val_accuracy", val_acc)):
            history[name].append(float(value))
        best = [v.numpy() for v in net.variables] if better else best
        wait = 0 if better else wait + 1
        if verbose:
            print(f"época {epoch + 1}/{epochs}: pérdida {num(history['loss'][-1], 3)}, "
                  f"exactitud en validación {pct(val_acc)}")
        if keep is not None:
            keep({"epoch": epoch + 1, "variables": [v.numpy() for v in net.variables],
                  "optimizer": [v.numpy() for v in net.optimizer.variables], "best": best,
                  "wait": wait, "history": history, "seconds": time.monotonic() - start})
    if best is not None:
        _assign(net.variables, best)
    return TrainResult.from_history(history, time.monotonic() - start)


def _validation(model: keras.Model, net: keras.Model, val: Features | tf.data.Dataset,
                cut: str | None) -> Callable[[], tuple[float, float]]:
    """``() -> (val_loss, val_accuracy)`` of the model ``net`` trains: the head on validation
    features (exact for a frozen backbone: the logits are ``head(features)``), or ``net``
    evaluated on a pipeline."""
    if not isinstance(val, Features):
        return lambda: tuple(float(v) for v in net.evaluate(val, verbose=0))
    head = net if net is not model else keras_models.head_from(model, cut)
    return lambda: soft_label_metrics(head, val.x, val.y)


def _epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch of the run with ``seed`` (distinct for every pair)."""
    return seed * 100_003 + epoch + 1


def _assign(variables: list, values: list) -> None:
    if len(variables) != len(values):
        raise checkpoints.CheckpointError(
            f"the saved state holds {len(values)} arrays for {len(variables)} variables")
    for var, value in zip(variables, values, strict=True):
        var.assign(value)


def state_bytes(state: dict) -> bytes:
    """A training state (:func:`train_classifier`) as ``.npz`` bytes: each list of arrays under
    ``<name>/<i>``, everything else as JSON (no pickle)."""
    arrays = {f"{name}/{i}": np.asarray(v) for name in ARRAY_LISTS
              for i, v in enumerate(state.get(name) or [])}
    rest = {k: v for k, v in state.items() if k not in ARRAY_LISTS}
    rest["present"] = [name for name in ARRAY_LISTS if state.get(name) is not None]
    arrays["json"] = np.array(json.dumps(rest))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def read_state(path) -> dict:
    """The training state :func:`state_bytes` wrote to ``path``."""
    with np.load(path, allow_pickle=False) as npz:
        state = json.loads(str(npz["json"]))
        lists: dict[str, list] = {name: [] for name in state.pop("present")}
        for entry in sorted((k for k in npz.files if "/" in k),
                            key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
            lists[entry.split("/")[0]].append(npz[entry])
    return {**state, **{name: lists.get(name) for name in ARRAY_LISTS}}


def build_for(config: TrainConfig, num_classes: int, weights="imagenet") -> keras.Model:
    """A frozen-backbone classifier as ``config`` describes it."""
    return keras_models.build_classifier(config.backbone, num_classes, weights=weights,
                                         input_size=config.size, dropout=config.dropout,
                                         preprocessing=config.preprocessing)


def train_variant(config: TrainConfig, data: FlowersSplits, verbose: int = 2, say=print,
                  allow_long: bool = False, state: dict | None = None,
                  keep: Callable[[dict], object] | None = None) -> tuple[keras.Model, TrainResult]:
    """Build and train one variant: baseline on cached features, the others on image batches.

    ``augment``: :func:`helpers.keras.augment.augmentation_block`; ``mixup``/``cutmix``: those
    mixes on the plain images (each technique alone, so their effects can be compared);
    ``baseline_long``: the baseline with the fine-tuning's total epochs; ``finetune`` and
    ``augment_finetune``: the head on features, then :func:`fine_tune` on plain or augmented
    images (the only difference between the two). ``seconds`` include extracting the training
    features. ``config.seed`` sets the initialization, dropout, shuffling and augmentation.
    Before training it says how long the run (what is left of it, when resumed) should take
    (:func:`estimate_seconds`, from the validation features' measured cost), warns when an epoch
    runs far past its share of that (:class:`helpers.core.training.EpochWatch`) and, on a CPU,
    refuses a run longer than :data:`helpers.core.training.LONG_MINUTES` unless ``allow_long``
    or ``$XAI_ALLOW_LONG=1``.
    ``keep``/``state``: the per-epoch training state, to resume (:func:`train_classifier`).
    """
    keras.utils.set_random_seed(config.seed)
    model = build_for(config, data.num_classes)
    val = data.features("validation", model)
    total = config.epochs + (config.fine_tune_epochs if config.variant in FINE_TUNED else 0)
    done = 0 if state is None else state["epoch"] + state.get("offset", 0)
    per_image, title = val.seconds / max(len(val.x), 1), f"«{TITLES[config.variant]}»"
    announce_duration(estimate_seconds(config, data, per_image) * (total - done) / total, title,
                      not tf.config.list_physical_devices("GPU"), say, allow_long)
    watches = [EpochWatch(epoch_seconds(config, data, per_image, stage), title, say)
               for stage in (1, 2)]
    common = {"epochs": config.epochs, "learning_rate": config.learning_rate,
              "patience": config.patience, "batch_size": config.batch_size,
              "seed": config.seed, "verbose": verbose, "watch": watches[0]}
    if config.variant not in ON_FEATURES + FINE_TUNED:
        mix = {"mixup": functools.partial(augment.mixup, alpha=config.mixup_alpha),
               "cutmix": functools.partial(augment.cutmix, alpha=config.cutmix_alpha)}
        batches = functools.partial(training_batches, data, config.seed,
                                    config.variant == "augment", mix.get(config.variant))
        return model, train_classifier(model, batches, val, **common, state=state, keep=keep)
    if state is not None and state.get("stage") == 2:  # the head had finished: skip it
        result = TrainResult.from_history(state["head_history"], state["head_seconds"])
    else:
        train = data.features("train", model)
        stage = None if keep is None else lambda st: keep({**st, "stage": 1})
        result = train_classifier(model, train, val, **common, state=state, keep=stage)
        result.seconds += train.seconds
        state = None
    if config.variant in FINE_TUNED:
        result = fine_tune(model, config, data, result, verbose, state, keep, watches[1])
    return model, result


def training_batches(data: FlowersSplits, seed: int, augmented: bool, mix: Callable | None,
                     epoch: int) -> tf.data.Dataset:
    """The training pipeline of one epoch: shuffling, augmentation and mixes seeded from
    ``(seed, epoch)`` alone, so an epoch's batches do not depend on the epochs before it."""
    epoch_seed = _epoch_seed(seed, epoch)
    block = augment.augmentation_block(seed=epoch_seed) if augmented else None
    return data.pipeline("train", training=True, augment=block, mix=mix, seed=epoch_seed)


def estimate_seconds(config: TrainConfig, data: FlowersSplits, per_image: float) -> float:
    """Seconds :func:`train_variant` should take, from ``per_image``, the measured cost of one
    image through preprocessing and backbone: one pass over the training images to extract the
    features of the variants whose head trains on them, then the epochs of each stage
    (:func:`epoch_seconds`)."""
    extract = data.infos["train"].num_examples * per_image
    first = config.epochs * epoch_seconds(config, data, per_image, 1)
    if config.variant in FINE_TUNED:
        return extract + first + config.fine_tune_epochs * epoch_seconds(config, data,
                                                                         per_image, 2)
    return first + (extract if config.variant in ON_FEATURES else 0.0)


def epoch_seconds(config: TrainConfig, data: FlowersSplits, per_image: float,
                  stage: int) -> float:
    """Seconds one epoch of ``stage`` (1: the head or the whole run, 2: fine-tuning) should
    take: next to nothing for a head on cached features, two passes over the training images
    for augmented or mixed image batches, three per fine-tuning epoch when the images go
    through a backbone that learns (``augment_finetune``), one for ``finetune`` (cached
    activations)."""
    n = data.infos["train"].num_examples
    if stage == 2:
        return n * per_image * (3 if config.variant == "augment_finetune" else 1)
    return 0.0 if config.variant in ON_FEATURES + FINE_TUNED else 2 * n * per_image


def fine_tune(model: keras.Model, config: TrainConfig, data: FlowersSplits, head: TrainResult,
              verbose: int = 2, state: dict | None = None,
              keep: Callable[[dict], object] | None = None,
              watch: EpochWatch | None = None) -> TrainResult:
    """Second stage of keras.io's transfer-learning recipe, after the head (``head``) is trained.

    The top ``config.fine_tune_kernels`` convolutions of the backbone are unfrozen (BatchNorm
    stays in inference mode, :func:`helpers.keras.models.unfreeze_top`) and trained with the
    head, at ``config.fine_tune_learning_rate``, with early stopping. The layers below the
    first unfrozen one (``cut``) do not change, so validation (and the training of ``finetune``)
    runs on the activations entering ``cut``, computed once; ``augment_finetune`` trains on
    augmented image batches through the whole model. The model keeps the best epoch of both
    stages (the head's if fine-tuning never beats it); the history runs through both.
    ``state``/``keep``: as :func:`train_classifier`'s, for this stage (they carry the head's
    weights and history, so a resumed run skips the head). ``watch``: as
    :func:`train_classifier`'s.
    """
    if state is not None:
        _assign(model.variables, state["head"])
    head_weights = [v.numpy() for v in model.variables]
    cut = keras_models.unfreeze_top(model, config.fine_tune_kernels)[0]
    val = data.features("validation", model, cut)  # the layers below cut stay frozen
    if config.variant == "augment_finetune":  # new images every epoch: through the whole model
        train = functools.partial(training_batches, data, config.seed, True, None)
    else:
        train = data.features("train", model, cut)
    stage = None if keep is None else lambda st: keep(
        {**st, "stage": 2, "offset": head.epochs_run, "head": head_weights,
         "head_history": head.history, "head_seconds": head.seconds})
    second = train_classifier(model, train, val, epochs=config.fine_tune_epochs,
                              learning_rate=config.fine_tune_learning_rate,
                              patience=config.patience, batch_size=config.batch_size,
                              seed=config.seed, verbose=verbose, cut=cut, state=state,
                              keep=stage, watch=watch)
    keras_models.set_backbone_trainable(model, False)
    history = {k: head.history[k] + second.history[k] for k in head.history if k in second.history}
    history["stage"] = [1.0] * head.epochs_run + [2.0] * second.epochs_run
    result = TrainResult.from_history(history, head.seconds + second.seconds)
    if result.best_epoch <= head.epochs_run:  # fine-tuning never beat the head alone
        _assign(model.variables, head_weights)
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
    profile and ``"from_cache"``. An interrupted training resumes from its last finished epoch
    (:class:`helpers.checkpoints.Resumable`, ``<stem>.resume.npz`` in the cache).
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
    progress = checkpoints.Resumable(f"{stem}.resume", key, say, ".npz", state_bytes,
                                     read_state, enabled=problem is None)
    state = None if force else progress.load(config.epochs + (
        config.fine_tune_epochs if variant in FINE_TUNED else 0))
    model, result = train_variant(config, data, verbose=verbose, say=say,
                                  allow_long=allow_long, state=state, keep=progress.keep)
    meta = {"key": key, "profile": data.profile.name, **asdict(result)}
    if problem is None:
        meta.update(checkpoints.save_or_keep(stem, ".weights.h5", lambda: weights_bytes(model),
                                             meta, say))
    if "checkpoint" in meta:
        progress.discard()  # the finished model is saved: nothing left to resume
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
