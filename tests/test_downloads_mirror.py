"""The real download paths, against a mirror served by the test process on 127.0.0.1.

A tiny CIFAR-10 archive in torchvision's real format (``cifar-10-python.tar.gz`` with pickled
batches; torchvision's md5 constants are pointed at it), a tiny Flowers102 source for tfds
(``102flowers.tgz``, ``imagelabels.mat``, ``setid.mat``; the builder's base URL and registered
sha256s are pointed at it) and a weight file are served; the loaders
download them into the data directory (or the cache when it is read-only), and the next call
uses the local copy with the server stopped.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10

from helpers.data import (
    DataNotFoundError,
    cifar10,
    fetch_weights,
    flowers102,
    load_cifar10,
    load_flowers102,
    resolve,
    weights,
)

PER_BATCH = 20  # images per training batch file (5 files) and in the test file


class Mirror:
    """A static file server on 127.0.0.1 for one folder; ``stop()`` closes it."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cifar_archive(folder: Path) -> dict:
    """``cifar-10-python.tar.gz`` as torchvision expects it; returns md5s and the pixels."""
    rng = np.random.default_rng(0)
    files, sums, pixels = {}, {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(v) for v in np.arange(PER_BATCH) % 10]
        files[name] = pickle.dumps({"data": data, "labels": labels, "batch_label": name})
        pixels[name] = data
    files["batches.meta"] = pickle.dumps({"label_names": list(cifar10.CLASSES)})
    sums = {name: md5(blob) for name, blob in files.items()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (folder / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    return {"sums": sums, "tgz": md5(buffer.getvalue()), "pixels": pixels}


@pytest.fixture
def mirror(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = Mirror(served)
    yield served, server
    server.stop()



def serve_cifar(monkeypatch, served: Path, server: Mirror) -> dict:
    made = cifar_archive(served)
    url = f"{server.url}/cifar-10-python.tar.gz"
    monkeypatch.setattr(cifar10, "URL", url)
    monkeypatch.setattr(CIFAR10, "url", url)
    monkeypatch.setattr(CIFAR10, "tgz_md5", made["tgz"])
    monkeypatch.setattr(CIFAR10, "train_list",
                        [[f"data_batch_{i}", made["sums"][f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", made["sums"]["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": made["sums"]["batches.meta"]})
    return made


@pytest.mark.parametrize("read_only", [False, True])
def test_cifar_download_then_offline_reuse(mirror, dirs, monkeypatch, read_only):
    served, server = mirror
    data, cache = dirs
    made = serve_cifar(monkeypatch, served, server)
    if read_only:  # as root nothing is read-only: say so through os.access
        monkeypatch.setattr(resolve.os, "access", lambda path, mode: False)
    first = load_cifar10()
    target = cache if read_only else data
    assert (target / "cifar-10-batches-py" / "test_batch").is_file()
    assert first.source == f"descargado por torchvision en {target}"
    assert (len(first.train), len(first.test)) == (5 * PER_BATCH, PER_BATCH)
    expected = made["pixels"]["test_batch"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(first.test.images, expected)
    server.stop()  # offline from here on
    again = load_cifar10()
    assert again.source == f"copia de torchvision en {target}"
    np.testing.assert_array_equal(again.test.images, first.test.images)


def test_a_mirror_serving_a_corrupt_archive_is_not_taken(mirror, dirs, monkeypatch):
    served, server = mirror
    serve_cifar(monkeypatch, served, server)
    archive = served / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-100])  # md5 no longer matches
    with pytest.raises(DataNotFoundError, match="CIFAR-10 not found"):
        load_cifar10()


def test_weights_download_with_checksum_then_offline_reuse(mirror, dirs, monkeypatch):
    served, server = mirror
    data, _ = dirs
    blob = b"weights of a tiny model" * 100
    (served / "tiny.h5").write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    spec = weights.WeightFile("tiny.h5", f"{server.url}/tiny.h5", "keras", f"sha256:{digest}")
    monkeypatch.setitem(weights.WEIGHTS, "tiny", spec)
    path = fetch_weights("tiny")
    assert path == data / "weights" / "tiny.h5" and path.read_bytes() == blob
    server.stop()
    assert fetch_weights("tiny") == path  # offline: the local copy


@pytest.mark.parametrize("checksum", ["sha256:" + "0" * 64, "md5:" + "0" * 32, "sha256:f37072fd"])
def test_a_weight_file_with_the_wrong_checksum_is_rejected(mirror, dirs, monkeypatch, checksum):
    served, server = mirror
    data, _ = dirs
    (served / "tiny.h5").write_bytes(b"tampered")
    spec = weights.WeightFile("tiny.h5", f"{server.url}/tiny.h5", "keras", checksum)
    monkeypatch.setitem(weights.WEIGHTS, "tiny", spec)
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        fetch_weights("tiny")
    assert not (data / "weights" / "tiny.h5").exists()  # nothing half-written is left


def test_an_md5_published_checksum_is_checked_as_md5(mirror, dirs, monkeypatch):
    served, server = mirror
    blob = b"keras publishes md5 digests"
    (served / "k.h5").write_bytes(blob)
    spec = weights.WeightFile("k.h5", f"{server.url}/k.h5", "keras", f"md5:{md5(blob)}")
    monkeypatch.setitem(weights.WEIGHTS, "k", spec)
    assert fetch_weights("k").read_bytes() == blob


def test_every_weight_file_has_a_published_checksum():
    unverified = {name for name, spec in weights.WEIGHTS.items() if spec.checksum is None}
    assert unverified <= {"mobilenet_v2_imagenet"}  # Keras publishes none for this file
    for spec in weights.WEIGHTS.values():
        if spec.checksum:
            algorithm, _, digest = spec.checksum.partition(":")
            assert algorithm in {"sha256", "md5"} and len(digest) >= 8
            int(digest, 16)  # hexadecimal


FLOWER_SPLITS = {"trnid": [1, 2, 3], "valid": [4, 5], "tstid": [6, 7, 8, 9]}


def flowers_source(folder: Path) -> dict:
    """``102flowers.tgz`` (an uncompressed tar, as the real one), ``imagelabels.mat`` and
    ``setid.mat`` for nine images; returns each file's tfds ``UrlInfo`` fields and the labels."""
    from PIL import Image
    from scipy.io import savemat

    labels = np.array([3, 7, 3, 101, 7, 1, 3, 102, 50])  # 1-based, as in the real file
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for image_id in range(1, len(labels) + 1):
            jpeg = io.BytesIO()
            Image.new("RGB", (12 + image_id, 10), (20 * image_id, 0, 0)).save(jpeg, "JPEG")
            info = tarfile.TarInfo(f"jpg/image_{image_id:05d}.jpg")
            info.size = jpeg.tell()
            tar.addfile(info, io.BytesIO(jpeg.getvalue()))
    (folder / "102flowers.tgz").write_bytes(buffer.getvalue())
    savemat(folder / "imagelabels.mat", {"labels": labels[None, :]})
    savemat(folder / "setid.mat", {k: np.array(v)[None, :] for k, v in FLOWER_SPLITS.items()})
    files = ["102flowers.tgz", "imagelabels.mat", "setid.mat"]
    infos = {name: ((folder / name).stat().st_size,
                    hashlib.sha256((folder / name).read_bytes()).hexdigest()) for name in files}
    return {"infos": infos, "labels": labels}


def serve_flowers(monkeypatch, served: Path, server: Mirror) -> dict:
    """Point tfds' builder (base URL and registered checksums) and the loader at the mirror."""
    from tensorflow_datasets.core.download.checksums import UrlInfo
    from tensorflow_datasets.datasets.oxford_flowers102 import (
        oxford_flowers102_dataset_builder as builder,
    )

    made = flowers_source(served)
    base = f"{server.url}/"
    monkeypatch.setattr(builder, "_BASE_URL", base)
    monkeypatch.setattr(flowers102, "URL", f"{base}102flowers.tgz")
    infos = {f"{base}{name}": UrlInfo(size=size, checksum=digest, filename=name)
             for name, (size, digest) in made["infos"].items()}
    monkeypatch.setattr(builder.Builder, "url_infos", infos)  # tfds checks sizes and sha256
    return made


def labels_of(ds) -> list[int]:
    return [int(y) for _, y in ds.as_numpy_iterator()]


@pytest.mark.parametrize("read_only", [False, True])
def test_flowers_download_with_tfds_then_offline_reuse(mirror, dirs, monkeypatch, read_only):
    served, server = mirror
    data, cache = dirs
    made = serve_flowers(monkeypatch, served, server)
    if read_only:
        monkeypatch.setattr(resolve.os, "access", lambda path, mode: False)
    target = (cache if read_only else data) / "tensorflow_datasets"
    ds, info = load_flowers102("test")
    assert info.source == f"descargado por tfds en {target}"
    assert (target / "oxford_flowers102").is_dir()
    expected = [int(made["labels"][i - 1]) - 1 for i in FLOWER_SPLITS["tstid"]]
    assert sorted(labels_of(ds)) == sorted(expected)  # 0-based labels of the test ids
    assert info.num_examples == 4 and len(info.class_names) == 102
    server.stop()  # offline from here on
    for split, ids in [("train", "trnid"), ("validation", "valid")]:
        again, info = load_flowers102(split)
        assert info.source == f"copia local de tfds en {target}"
        want = [int(made["labels"][i - 1]) - 1 for i in FLOWER_SPLITS[ids]]
        assert sorted(labels_of(again)) == sorted(want)
    image, _ = next(iter(load_flowers102("train")[0]))
    assert image.dtype.name == "uint8" and image.shape[-1] == 3


def test_a_flowers_mirror_serving_a_tampered_file_is_not_taken(mirror, dirs, monkeypatch):
    served, server = mirror
    serve_flowers(monkeypatch, served, server)
    setid = served / "setid.mat"
    setid.write_bytes(setid.read_bytes().replace(b"tstid", b"tstix"))  # same size, new sha256
    with pytest.raises(DataNotFoundError, match=r"(?s)Flowers102 not found.*NonMatchingChecksum"):
        load_flowers102("train")
