"""Oxford Flowers102 for the Keras track, as ``tfds.load(..., as_supervised=True)`` gives it.

Local copy first (the project's npz files or a tfds ``data_dir``), then tfds' download.
Lesson: ``10_flowers102_datos_y_pipeline.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.data.resolve import (
    balanced_subset,
    data_dir,
    download_dir,
    not_found,
    read_npz,
    try_download,
)
from helpers.data.sources import TFDS_NAME, flowers_npz, tfds_dirs

SPLITS = {"train": "train", "validation": "val", "test": "test_subset"}
OFFICIAL_SIZES = {"train": 1020, "validation": 1020, "test": 6149}
URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz"


@dataclass(frozen=True)
class FlowersInfo:
    """Facts about one loaded split."""

    split: str
    num_examples: int
    official_num_examples: int
    class_names: tuple[str, ...]
    source: str
    note: str


def load_flowers102(split: str, n: int | None = None, seed: int = 0):
    """``(dataset, info)`` for ``split`` in train/validation/test; items are (uint8 [H,W,3], int64).

    ``n`` takes a class-balanced subset (None: the whole split). Looks in ``$XAI_DATA_DIR`` for
    ``flowers102/flowers102_<split>.npz`` or a tfds data directory holding ``oxford_flowers102``;
    else downloads with tfds; else raises :class:`~helpers.data.DataNotFoundError` (no hang).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    npz = flowers_npz(SPLITS[split])
    if npz.exists():
        return _from_npz(npz, split, n, seed)
    for root in tfds_dirs():
        if (root / TFDS_NAME).is_dir():
            return _from_tfds(root, split, n, seed, download=False)
    target = download_dir() / "tensorflow_datasets"
    result, reason = try_download(lambda: _from_tfds(target, split, n, seed, download=True), URL)
    if result is not None:
        return result
    looked = [npz] + [root / TFDS_NAME for root in tfds_dirs()]
    raise not_found("Oxford Flowers102", looked, URL, reason,
                    "run `tfds.load('oxford_flowers102')` on a machine with internet and copy "
                    f"~/tensorflow_datasets/{TFDS_NAME} into {data_dir() / 'tensorflow_datasets'}, "
                    "or point $XAI_DATA_DIR to a directory holding flowers102/*.npz.")


def _from_npz(path: Path, split: str, n: int | None, seed: int):
    import tensorflow as tf

    f = read_npz(path, ["jpeg", "offsets", "label", "class_names"])
    buf, off, labels, names = f["jpeg"], f["offsets"], f["label"], f["class_names"]
    keep = balanced_subset(labels, n, seed)
    blobs = [buf[off[i]:off[i + 1]].tobytes() for i in keep]
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(blobs), tf.constant(labels[keep])))
    ds = ds.map(lambda b, y: (tf.io.decode_jpeg(b, channels=3), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    note = "Imágenes guardadas con el lado corto reducido a 224 px (JPEG, calidad 90)."
    if split == "test":
        note += (f" La copia local del split de prueba tiene {len(labels)} de las "
                 f"{OFFICIAL_SIZES['test']} imágenes oficiales (20 por clase).")
    info = FlowersInfo(split, len(keep), OFFICIAL_SIZES[split], tuple(str(s) for s in names),
                       f"copia local (npz) en {path.parent}", note)
    return ds, info


def _from_tfds(root: Path, split: str, n: int | None, seed: int, download: bool):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds, tfds_info = tfds.load(TFDS_NAME, split=split, data_dir=str(root), as_supervised=True,
                              with_info=True, download=download, shuffle_files=False)
    total = tfds_info.splits[split].num_examples
    if n is not None:
        labels = np.fromiter((int(y) for _, y in ds.map(lambda x, y: (0, y))), dtype=np.int64)
        keep = tf.constant(balanced_subset(labels, n, seed))
        ds = ds.enumerate().filter(lambda i, _: tf.reduce_any(i == keep)).map(lambda i, xy: xy)
    names = tuple(tfds_info.features["label"].names)
    source = ("descargado por tfds en " if download else "copia local de tfds en ") + str(root)
    info = FlowersInfo(split, total if n is None else n, OFFICIAL_SIZES[split], names, source, "")
    return ds, info
