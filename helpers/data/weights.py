"""Pretrained weight files: found locally, else downloaded, else a clear error.

Lesson: ``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from helpers.data.resolve import (
    data_dir,
    download,
    download_dir,
    first_existing,
    not_found,
    try_download,
)

_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications"


@dataclass(frozen=True)
class WeightFile:
    """One weight file: its name on disk, where it comes from, and its framework's cache."""

    filename: str
    url: str
    framework_cache: str  # "torch" (torch hub checkpoints) or "keras" (~/.keras/models)
    checksum: str | None  # "sha256:<hex>" or "md5:<hex>" as published (see resolve.download)

    def local_candidates(self) -> list[Path]:
        root = data_dir()
        own = [root / "weights" / self.filename, root / "checkpoints" / self.filename]
        return [*own, framework_cache_dir(self.framework_cache) / self.filename]


WEIGHTS = {
    "resnet18_imagenet": WeightFile(
        "resnet18-f37072fd.pth", "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "torch", "sha256:f37072fd"),
    "resnet20_cifar10": WeightFile(
        "resnet20-12fca82f.th",
        "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
        "resnet20-12fca82f.th", "torch", "sha256:12fca82f"),
    "mobilenet_v2_imagenet": WeightFile(
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        f"{_KERAS}/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        "keras", None),  # Keras publishes no checksum for it; nobody has hashed it here yet
    "efficientnet_b0_imagenet": WeightFile(
        "efficientnetb0_notop.h5",
        "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5", "keras",
        "md5:50bc09e76180e00e4465e1a485ddc09d"),  # keras.applications.efficientnet
    "mobilenet_025_imagenet": WeightFile(
        "mobilenet_2_5_224_tf_no_top.h5", f"{_KERAS}/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
        "keras", "sha256:dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"),
}


def framework_cache_dir(framework: str) -> Path:
    """The directory where torch hub or Keras keep downloaded weights."""
    if framework == "torch":
        torch_home = os.environ.get("TORCH_HOME") or Path(
            os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"
        return Path(torch_home).expanduser() / "hub" / "checkpoints"
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models"


def fetch_weights(name: str) -> Path:
    """Path to the weight file ``name`` (one of :data:`WEIGHTS`): local copy, else download.

    Raises :class:`~helpers.data.DataNotFoundError` (within ~10 s on a closed network) naming
    every place looked at and how to get the file.
    """
    if name not in WEIGHTS:
        raise ValueError(f"unknown weights {name!r}; known: {sorted(WEIGHTS)}")
    spec = WEIGHTS[name]
    candidates = spec.local_candidates()
    if (found := first_existing(candidates)) is not None:
        return found
    dest = download_dir() / "weights" / spec.filename
    path, reason = try_download(lambda: download(spec.url, dest, spec.checksum), spec.url)
    if path is not None:
        return path
    raise not_found(f"Weights {name!r} ({spec.filename})", candidates, spec.url, reason,
                    f"download {spec.url} on a machine with internet and copy it to "
                    f"{candidates[0]}.")
