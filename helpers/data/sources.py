"""Where each dataset's local copy would be found, checked without importing a framework.

Lesson: ``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers.data.resolve import cache_dir, data_dir

CIFAR_TV_FOLDER = "cifar-10-batches-py"
TFDS_NAME = "oxford_flowers102"


def cifar_npz(name: str = "subset") -> Path:
    """``cifar10/cifar10_<name>.npz`` in the data directory (name: subset or train_full_jpeg)."""
    return data_dir() / "cifar10" / f"cifar10_{name}.npz"


def cifar_torchvision_roots() -> list[Path]:
    """Roots that may hold torchvision's ``cifar-10-batches-py`` folder."""
    return [data_dir(), cache_dir()]


def flowers_npz(split_file: str) -> Path:
    """``flowers102/flowers102_<split_file>.npz`` in the data directory."""
    return data_dir() / "flowers102" / f"flowers102_{split_file}.npz"


def tfds_dirs() -> list[Path]:
    """tfds data directories that may hold ``oxford_flowers102``."""
    env = os.environ.get("TFDS_DATA_DIR")
    return [data_dir() / "tensorflow_datasets", data_dir(), cache_dir() / "tensorflow_datasets",
            Path(env or "~/tensorflow_datasets").expanduser()]


def locate_cifar10() -> str | None:
    """A short description (Spanish) of the local CIFAR-10 copy the loader would use, or None."""
    if cifar_npz().exists():
        return f"copia local (npz, JPEG calidad 75) en {cifar_npz().parent}"
    found = next((r for r in cifar_torchvision_roots() if (r / CIFAR_TV_FOLDER).is_dir()), None)
    return None if found is None else f"copia local de torchvision en {found / CIFAR_TV_FOLDER}"


def locate_flowers102() -> str | None:
    """A short description (Spanish) of the local Flowers102 copy the loader would use, or None."""
    if flowers_npz("train").exists():
        return f"copia local (npz, lado corto 224) en {flowers_npz('train').parent}"
    found = next((r for r in tfds_dirs() if (r / TFDS_NAME).is_dir()), None)
    return None if found is None else f"copia local de tfds en {found / TFDS_NAME}"
