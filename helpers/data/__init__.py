"""Datasets and pretrained weights, offline first.

Every loader looks for a local copy in ``$XAI_DATA_DIR`` (default ``<repo>/data``), then tries
the real download, then raises :class:`DataNotFoundError` saying where it looked and what to do.
Framework code is imported lazily: ``helpers.data`` itself imports neither torch nor TensorFlow.
Lesson: ``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import importlib

from helpers.data.resolve import (
    DataNotFoundError,
    balanced_subset,
    cache_dir,
    data_dir,
)
from helpers.data.weights import WEIGHTS, fetch_weights

_LAZY = {"load_cifar10": "cifar10", "load_flowers102": "flowers102"}

__all__ = ["WEIGHTS", "DataNotFoundError", "balanced_subset", "cache_dir", "data_dir",
           "describe_sources", "fetch_weights", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"helpers.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'helpers.data' has no attribute {name!r}")


def describe_sources() -> dict[str, str]:
    """Where each dataset would be read from right now, in Spanish for the notebooks (nothing is
    loaded)."""
    from helpers.data.sources import locate_cifar10, locate_flowers102

    missing = "sin copia local: el cargador intentará descargarlo"
    return {"CIFAR-10": locate_cifar10() or missing, "Flowers102": locate_flowers102() or missing}
