"""Training and evaluation of the CIFAR-10 models, one code path for CPU and GPU.

The same functions train in mixed precision everywhere it pays (:func:`mixed_precision`:
float16 + ``GradScaler`` on a GPU, bfloat16 on CPUs with native bfloat16 instructions) and use
pinned memory and non-blocking copies on a GPU (off on a CPU). Both train in
``channels_last`` memory format (faster convolutions on CPUs and tensor cores alike). Trained
models are kept as verified checkpoints (:mod:`helpers.checkpoints`). Lesson:
``01_cifar10_modelo.ipynb``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from helpers import checkpoints
from helpers.core.shortcut import Shortcut, plant_training_cue
from helpers.core.spanish import num, pct
from helpers.core.stats import accuracy
from helpers.core.training import EpochWatch, TrainResult, announce_duration
from helpers.data.cifar10 import CifarImages
from helpers.profile import Profile
from helpers.torch.pointwise import subsample_strided_pointwise

VAL_FRACTION = 0.05  # class-balanced share of the training split held out for validation
CACHE_VERSION = 2  # bump when the training code changes what a checkpoint means


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the profile sets epochs, batch size and width)."""

    epochs: int
    batch_size: int = 128
    width: int = 64  # channels of the ResNet-18's first stage (see resnet18_cifar)
    max_lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0


def config_for(profile: Profile, shortcut: Shortcut | None = None) -> TrainConfig:
    """The ResNet-18's training configuration under ``profile``: its sizes, and a peak learning
    rate scaled linearly with the batch size: 0.2 per 128 images (for the fast profile's short
    schedule, 0.4 at batch 256 beat 0.1 and 0.2 in ``bench/bench_cifar_width.py``). With a
    ``shortcut`` the profile's (shorter) shortcut schedule applies."""
    epochs = profile.shortcut_epochs if shortcut else profile.cifar_epochs
    return TrainConfig(epochs=epochs, batch_size=profile.cifar_batch_size,
                       width=profile.cifar_width, max_lr=0.2 * profile.cifar_batch_size / 128)


def mixed_precision(device: torch.device) -> torch.autocast:
    """The autocast context of training on ``device``: float16 on CUDA (with a ``GradScaler``),
    bfloat16 on a CPU with native bfloat16 support (about 1.5x faster training of the fast
    profile's ResNet on 2 cores, ``bench/bench_cifar_width.py --precision``), else off. Weights,
    BatchNorm and the loss stay float32; the explainers always run in float32."""
    dtype = _mixed_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def precision_name(device: torch.device) -> str:
    """The dtype :func:`mixed_precision` computes in on ``device``, e.g. ``"bfloat16"``."""
    return str(_mixed_dtype(device) or torch.float32).removeprefix("torch.")


def _mixed_dtype(device: torch.device) -> torch.dtype | None:
    if device.type == "cuda":
        return torch.float16
    native_bf16 = device.type == "cpu" and torch.backends.mkldnn.is_available() and \
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if native_bf16 else None


def _identity(batch):
    return batch


def loader(dataset: CifarImages, batch_size: int, shuffle: bool, device: torch.device,
           seed: int = 0) -> DataLoader:
    """Batches ``(x, y)`` built by :meth:`CifarImages.batch` (one indexing op per batch).

    On CUDA: pinned memory and two worker processes, so host-to-device copies can overlap.
    """
    cuda = device.type == "cuda"
    return DataLoader(_Batched(dataset), batch_size=batch_size, shuffle=shuffle,
                      collate_fn=_identity, pin_memory=cuda, num_workers=2 if cuda else 0,
                      persistent_workers=cuda, generator=torch.Generator().manual_seed(seed))


class _Batched(Dataset):
    """Lets DataLoader fetch a whole batch with one call (``__getitems__``)."""

    def __init__(self, images: CifarImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i]

    def __getitems__(self, indices: list[int]):
        return self.images.batch(indices)


def random_crop_flip(x: torch.Tensor, pad_value: torch.Tensor, padding: int = 4,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch, on its device: pad-and-crop, horizontal flip.

    ``pad_value`` ([C]) is the padding colour in the model's input space (black pixels, as
    ``RandomCrop(32, padding=4)`` does before normalization).
    """
    n, c, h, w = x.shape
    padded = pad_value.view(1, c, 1, 1).expand(n, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding:padding + h, padding:padding + w] = x
    dy, dx, flip = torch.randint(0, 2 * padding + 1, (3, n), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device) + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, None, :]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[torch.arange(n, device=x.device)[:, None, None, None], chans, rows, cols]
    return torch.where((flip % 2 == 1).view(n, 1, 1, 1), out.flip(3), out)


def train(model: nn.Module, train_set: CifarImages, val_set: CifarImages, config: TrainConfig,
          device: torch.device, state: dict | None = None,
          keep: Callable[[dict], Any] | None = None,
          watch: EpochWatch | None = None) -> TrainResult:
    """SGD + OneCycle with standard augmentation; evaluates each epoch and keeps the best weights.

    The model ends in eval mode holding the weights of the epoch with the best validation
    accuracy (the first one on ties, :func:`helpers.core.training.best_epoch`). After every
    epoch ``keep(state)`` receives everything needed to go on (weights, optimizer, schedule,
    random generators, history); ``train(..., state=that)`` continues from there and ends with
    the weights an uninterrupted run gives. ``watch`` warns when an epoch runs far past its
    estimate. Strided 1x1 convolutions of ``model`` are first rewritten to subsample
    (:func:`helpers.torch.pointwise.subsample_strided_pointwise`: the same function; oneDNN's
    own kernel computes wrong weight gradients, or hangs, on AVX2 CPUs).
    """
    torch.manual_seed(config.seed)
    subsample_strided_pointwise(model).to(device, memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    data = loader(train_set, config.batch_size, shuffle=True, device=device, seed=config.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.max_lr, momentum=0.9,
                                nesterov=True, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, epochs=config.epochs, steps_per_epoch=len(data))
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)
    pad = model.normalization.constant(torch.zeros(1, 3, 1, 1), 0.0).flatten().to(device)
    gen = torch.Generator().manual_seed(config.seed)
    history: dict[str, list[float]] = {"loss": [], "val_accuracy": [], "seconds": []}
    best_state, start, first = None, time.monotonic(), 0
    parts = {"model": model, "optimizer": optimizer, "schedule": schedule, "scaler": scaler}
    generators = {"loader": data.generator, "augment": gen}
    if state is not None:
        for name, part in parts.items():
            part.load_state_dict(state[name])
        for name, generator in generators.items():
            generator.set_state(state["rng"][name])
        torch.set_rng_state(state["rng"]["torch"])
        history, best_state, first = state["history"], state["best"], state["epoch"]
        start -= history["seconds"][-1] if history["seconds"] else 0.0
    for epoch in range(first, config.epochs):
        model.train()
        losses = []
        with watch.epoch(epoch + 1, config.epochs) if watch else contextlib.nullcontext():
            for x, y in tqdm(data, desc=f"época {epoch + 1}/{config.epochs}", leave=False):
                x = random_crop_flip(x.to(device, non_blocking=True), pad, generator=gen)
                x = x.contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                with mixed_precision(device):
                    loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                losses.append(loss.item())
            val_acc = accuracy(*predict(model, val_set, device))
        print(f"época {epoch + 1}/{config.epochs}: pérdida {num(np.mean(losses), 3)}, "
              f"exactitud en validación {pct(val_acc)}")
        if not history["val_accuracy"] or val_acc > max(history["val_accuracy"]):
            best_state = copy.deepcopy(model.state_dict())
        history["loss"].append(float(np.mean(losses)))
        history["val_accuracy"].append(val_acc)
        history["seconds"].append(time.monotonic() - start)  # cumulative, with validation
        if keep is not None:
            keep({**{name: part.state_dict() for name, part in parts.items()},
                  "rng": {**{n: g.get_state() for n, g in generators.items()},
                          "torch": torch.get_rng_state()},
                  "history": history, "best": best_state, "epoch": epoch + 1})
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.xai_trained = True
    return TrainResult.from_history(history, time.monotonic() - start)


@torch.inference_mode()
def predict(model: nn.Module, dataset: CifarImages, device: torch.device,
            batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities [N,10] and labels [N] for a dataset (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    probs = []
    try:
        for x, _ in loader(dataset, batch_size, shuffle=False, device=device):
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                logits = model(x.to(device, non_blocking=True))
            probs.append(logits.float().softmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(probs).numpy(), dataset.labels


def split_validation(dataset: CifarImages, fraction: float = 0.1,
                     seed: int = 0) -> tuple[CifarImages, CifarImages]:
    """Class-balanced (train, validation) split of a training set; the test set stays untouched."""
    from helpers.data import balanced_subset

    val_idx = balanced_subset(dataset.labels, max(1, round(len(dataset) * fraction)), seed)
    train_idx = np.setdiff1d(np.arange(len(dataset)), val_idx)
    return (CifarImages(dataset.images[train_idx], dataset.labels[train_idx]),
            CifarImages(dataset.images[val_idx], dataset.labels[val_idx]))


def run_key(profile: Profile, config: TrainConfig, shortcut: Shortcut | None = None,
            init: str | None = None) -> dict:
    """Everything that defines a training run: a checkpoint is used only if its key is equal.

    ``init``: the initialization the model actually got (``model.xai_init``); by default the
    one the configuration asks for (ImageNet at width 64)."""
    asked = "imagenet" if config.width == 64 else "random"
    key = {**asdict(config), "train_size": _train_size(profile, shortcut),
           "val_fraction": VAL_FRACTION, "init": init or asked, "version": CACHE_VERSION}
    if shortcut is not None:  # as JSON stores it (lists, not tuples), so keys compare equal
        key["shortcut"] = {**asdict(shortcut), "color": list(shortcut.color)}
    return key


def _train_size(profile: Profile, shortcut: Shortcut | None) -> int | None:
    return profile.shortcut_train_size if shortcut else profile.cifar_train_size


def load_weights(path: Path, width: int) -> nn.Module:
    """A ResNet-18-CIFAR of ``width`` holding the weights saved at ``path`` (checked finite)."""
    from helpers.torch.models import resnet18_cifar

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise checkpoints.CheckpointError("no contiene un state_dict de PyTorch")
    checkpoints.require_finite((name, t.numpy()) for name, t in state.items()
                               if t.is_floating_point())
    model = resnet18_cifar(width, weights=None)
    model.load_state_dict(state)
    model.xai_trained = True
    return model


def load_or_train(profile: Profile, device: torch.device, data=None, force: bool = False,
                  say=print, shortcut: Shortcut | None = None,
                  allow_long: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The ResNet-18-CIFAR of ``profile``: a verified checkpoint if one fits, else trained now.

    Looks for ``resnet18_cifar_<profile>.pt`` in ``$XAI_DATA_DIR/checkpoints`` (shipped,
    read-only) and then in the cache (:func:`helpers.checkpoints.load_first`); ``force=True``
    retrains. Training uses ``data`` (default: :func:`helpers.data.load_cifar10` at the profile's
    training size, all test images), holds out :data:`VAL_FRACTION` of the training split for
    validation and measures the test accuracy on ``data.test``. Returns ``(model in eval mode on
    device, metadata)``: the run's key, :class:`~helpers.core.training.TrainResult` fields, test
    accuracy, split sizes, data source and the checkpoint's path.

    With ``shortcut`` (notebook 08) the training images carry that planted cue
    (:func:`helpers.core.shortcut.plant_training_cue`; validation too, as it comes from the same
    split), the profile's shortcut sizes apply and the checkpoint is
    ``resnet18_cifar_atajo_<profile>.pt``; ``test_accuracy`` is on the clean test images.

    Training says how long it should take (:func:`estimate_seconds`), warns when an epoch runs
    far past that (:class:`helpers.core.training.EpochWatch`) and, on a CPU, does not
    start a run longer than :data:`helpers.core.training.LONG_MINUTES` unless ``allow_long`` or
    ``$XAI_ALLOW_LONG=1``; an interrupted run resumes from its last finished epoch
    (:class:`helpers.checkpoints.Resumable`).
    """
    from helpers.data import load_cifar10
    from helpers.torch.models import resnet18_cifar

    config = config_for(profile, shortcut)
    torch.manual_seed(config.seed)  # the initial weights too: same configuration, same model
    model = resnet18_cifar(config.width, weights="imagenet" if config.width == 64 else None)
    key = run_key(profile, config, shortcut, init=model.xai_init)  # what it really starts from
    stem = f"resnet18_cifar_{'atajo_' if shortcut else ''}{profile.name}"
    if not force:
        found = checkpoints.load_first(stem, ".pt", key,
                                       lambda path: load_weights(path, config.width), say)
        if found is not None:
            model, meta = found
            say(f"Modelo entrenado cargado de {meta['checkpoint']} (perfil {meta['profile']}, "
                f"exactitud en prueba {pct(meta['test_accuracy'])} con {meta['n_test']} imágenes).")
            return model.to(device, memory_format=torch.channels_last).eval(), meta
    problem = checkpoints.cache_problem()
    if problem:
        say(f"Aviso: {problem}.")
    data = data or load_cifar10(_train_size(profile, shortcut), None)
    train_images = data.train
    if shortcut is not None:
        planted, _, _ = plant_training_cue(train_images.images, train_images.labels, shortcut)
        train_images = CifarImages(planted, train_images.labels, train_images.normalization)
    train_set, val_set = split_validation(train_images, VAL_FRACTION, config.seed)
    progress = checkpoints.Resumable(f"{stem}.resume", key, say, ".pt", _state_bytes,
                                     _load_state, enabled=problem is None)
    state = None if force else progress.load(config.epochs)
    left = config.epochs - (state["epoch"] if state else 0)
    seconds = estimate_seconds(model, train_set, val_set, config, device, left)
    announce_duration(seconds, f"la ResNet-18 ({left} época{'s' if left != 1 else ''})",
                      device.type == "cpu", say, allow_long)
    watch = EpochWatch(seconds / max(left, 1), "la ResNet-18", say)
    result = train(model, train_set, val_set, config, device, state, progress.keep, watch)
    meta = {"key": key, "profile": profile.name, "init": model.xai_init, **asdict(result),
            "precision": precision_name(device),
            "test_accuracy": accuracy(*predict(model, data.test, device)),
            "n_train": len(train_set), "n_val": len(val_set), "n_test": len(data.test),
            "data_source": data.source}
    if problem is None:
        meta.update(checkpoints.save_or_keep(stem, ".pt", lambda: weights_bytes(model), meta, say))
    if "checkpoint" in meta:
        progress.discard()  # the finished model is saved: nothing left to resume
    return model.eval(), meta


def _state_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def estimate_seconds(model: nn.Module, train_set: CifarImages, val_set: CifarImages,
                     config: TrainConfig, device: torch.device, epochs: int) -> float:
    """Seconds ``epochs`` of :func:`train` should take here, from a few training steps of a
    copy of ``model`` timed after one warm-up step (validation counted as a third of a step
    per batch). The model and every random generator are left untouched."""
    probe = subsample_strided_pointwise(copy.deepcopy(model))
    probe.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(probe.parameters(), lr=0.0)
    x, y = next(iter(loader(train_set, config.batch_size, shuffle=False, device=device)))
    x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with mixed_precision(device):
            loss = F.cross_entropy(probe(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    per_image = float(np.median(times[1:])) / len(x)
    return epochs * per_image * (len(train_set) + len(val_set) / 3)


def weights_bytes(model: nn.Module) -> bytes:
    """The bytes of ``torch.save(model.state_dict())``, made in memory."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()
