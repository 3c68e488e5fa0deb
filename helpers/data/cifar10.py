"""CIFAR-10 for the PyTorch track: local copy first, then torchvision's download.

Lesson: ``01_cifar10_modelo.ipynb``.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from helpers.data.resolve import (
    DataNotFoundError,
    balanced_subset,
    data_dir,
    download_dir,
    not_found,
    read_npz,
    try_download,
)
from helpers.data.sources import CIFAR_TV_FOLDER, cifar_npz, cifar_torchvision_roots
from helpers.torch import normalization as norm

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class CifarImages(Dataset):
    """uint8 images [N,32,32,3] and labels; items are (normalized [3,32,32] float, int label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 normalization: norm.Normalization = norm.CIFAR10) -> None:
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 [N,32,32,3], got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.normalization = normalization
        self.classes = CLASSES

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, _ = self.batch([i])
        return x[0], int(self.labels[i])

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """A normalized batch [n,3,32,32] and its labels, for the given indices."""
        pixels = torch.from_numpy(self.images[np.asarray(indices)]).permute(0, 3, 1, 2)
        x = self.normalization.normalize(pixels.float().div_(255))
        return x.contiguous(), torch.from_numpy(self.labels[np.asarray(indices)])


@dataclass(frozen=True)
class Cifar10:
    """The two splits, the class names, and where they came from."""

    train: CifarImages
    test: CifarImages
    classes: tuple[str, ...]
    source: str
    note: str


def load_cifar10(n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Cifar10:
    """CIFAR-10 train/test, class-balanced subsets of ``n_train``/``n_test`` images (None: all).

    ``n_train=0`` skips the training split (a notebook that only explains a trained model).
    Looks in ``$XAI_DATA_DIR`` for the project's npz copies (``cifar10/cifar10_subset.npz``,
    ``cifar10/cifar10_train_full_jpeg.npz``) or torchvision's ``cifar-10-batches-py``; else
    downloads with torchvision; else raises :class:`~helpers.data.DataNotFoundError`.
    Batches are normalized with the CIFAR-10 channel statistics
    (:data:`helpers.torch.normalization.CIFAR10`).
    """
    arrays, source, note = _read_arrays(full_train=n_train is None or n_train > 10_000)
    x_train, y_train, x_test, y_test = arrays
    tr = np.arange(0) if n_train == 0 else balanced_subset(y_train, n_train, seed)
    te = balanced_subset(y_test, n_test, seed)
    return Cifar10(CifarImages(x_train[tr], y_train[tr]), CifarImages(x_test[te], y_test[te]),
                   CLASSES, source, note)


def _read_arrays(full_train: bool):
    root = data_dir()
    subset, full = cifar_npz("subset"), cifar_npz("train_full_jpeg")
    jpeg_note = ("Son copias de CIFAR-10 recomprimidas en JPEG (calidad 75): los modelos "
                 "preentrenados con los originales sin pérdida (como la ResNet-20) pierden en "
                 "ellas unos 10 puntos de exactitud; un modelo entrenado con estas mismas "
                 "imágenes se evalúa de forma coherente.")
    if subset.exists() and (not full_train or full.exists()):
        d = read_npz(subset, ["x_test", "y_test"] + ([] if full_train else ["x_train", "y_train"]))
        x_test, y_test = d["x_test"], d["y_test"]
        x_train, y_train = _decode(full) if full_train else (d["x_train"], d["y_train"])
        source = f"copia local (npz) en {subset.parent}"
        return (x_train, y_train, x_test, y_test), source, jpeg_note
    tv_roots = cifar_torchvision_roots()
    for base in tv_roots:
        if (base / CIFAR_TV_FOLDER).is_dir():
            return _torchvision_arrays(base, download=False), f"copia de torchvision en {base}", ""
    target = download_dir()
    arrays, reason = try_download(lambda: _torchvision_arrays(target, download=True), URL)
    if arrays is not None:
        return arrays, f"descargado por torchvision en {target}", ""
    looked = [subset, full] + [b / CIFAR_TV_FOLDER for b in tv_roots]
    raise not_found("CIFAR-10", looked, URL, reason,
                    f"download cifar-10-python.tar.gz on a machine with internet and extract it "
                    f"into {root} (giving {root / CIFAR_TV_FOLDER}), or point $XAI_DATA_DIR to a "
                    "directory holding cifar10/cifar10_subset.npz.")


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    f = read_npz(path, ["jpeg", "offsets", "y"])
    buf, off = f["jpeg"], f["offsets"]
    try:
        images = [np.asarray(Image.open(io.BytesIO(buf[a:b].tobytes())).convert("RGB"))
                  for a, b in itertools.pairwise(off)]
    except (OSError, ValueError) as err:
        raise DataNotFoundError(f"{path} holds a damaged image ({err}). Delete the file and run "
                                "again, or point $XAI_DATA_DIR to a good copy.") from err
    return np.stack(images), f["y"]


def _torchvision_arrays(root: Path, download: bool):
    from torchvision.datasets import CIFAR10

    train = CIFAR10(str(root), train=True, download=download)
    test = CIFAR10(str(root), train=False, download=download)
    return (train.data, np.asarray(train.targets, dtype=np.int64),
            test.data, np.asarray(test.targets, dtype=np.int64))
