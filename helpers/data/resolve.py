"""Where data lives and how it is found: local copy, then download, then a clear error.

The data directory is ``$XAI_DATA_DIR`` (default ``<repo>/data`` in a checkout of the
repository, ``~/xai_data`` when the package is installed elsewhere); it may be read-only. Things
the project writes (downloads when the data directory is read-only, trained checkpoints) go to the
cache directory, ``$XAI_CACHE_DIR`` (default ``cache/`` inside that default). Lesson:
``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DATA_ENV = "XAI_DATA_DIR"
CACHE_ENV = "XAI_CACHE_DIR"
CONNECT_TIMEOUT_S = 10.0


def _default_data_dir() -> Path:
    """``<repo>/data`` when this package sits in a checkout of the repository, else ~/xai_data."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "data"
    return Path.home() / "xai_data"


DEFAULT_DATA_DIR = _default_data_dir()


class DataNotFoundError(FileNotFoundError):
    """A dataset or weight file is neither on disk nor downloadable; the message says what to do."""


def data_dir() -> Path:
    """The local data directory (``$XAI_DATA_DIR``, default :data:`DEFAULT_DATA_DIR`).

    A ``$XAI_DATA_DIR`` that does not exist is reported (a misspelt path is never created).
    """
    chosen = os.environ.get(DATA_ENV)
    path = Path(chosen or DEFAULT_DATA_DIR).expanduser().resolve()
    if chosen and not path.is_dir():
        raise DataNotFoundError(f"${DATA_ENV} is {chosen!r}, which is not an existing folder "
                                f"({path}). Fix the path (a typo?), create the folder, or unset "
                                f"${DATA_ENV} to use the default {DEFAULT_DATA_DIR}.")
    return path


def cache_root() -> Path:
    """The cache directory's path (``$XAI_CACHE_DIR``, default ``cache/`` in the default data
    directory), not created."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_DATA_DIR / "cache").expanduser().resolve()


def cache_dir() -> Path:
    """A writable directory for downloads and trained checkpoints (created on demand)."""
    path = cache_root()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise NotADirectoryError(f"the cache directory {path} (${CACHE_ENV}) cannot be created: "
                                 f"a file stands in its path ({err.filename}). Point "
                                 f"${CACHE_ENV} to a folder.") from err
    return path


def download_dir() -> Path:
    """Where downloads go: the data directory if writable, else the cache directory."""
    root = data_dir()
    return root if root.is_dir() and os.access(root, os.W_OK) else cache_dir()


def reachable(url: str, timeout: float | None = None) -> bool:
    """Whether ``url``'s server answers within ``timeout`` s (default ``CONNECT_TIMEOUT_S``).

    Any HTTP status counts as an answer.
    """
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout or CONNECT_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True  # the server answered
    except (urllib.error.URLError, OSError, ValueError):
        return False


def download(url: str, dest: Path, checksum: str | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, checking ``checksum`` when given.

    ``checksum`` is ``"<algorithm>:<hex digest or its prefix>"``, e.g. ``"sha256:f37072fd"``
    (torch hub publishes 8-hex sha256 prefixes) or ``"md5:50bc..."`` (Keras publishes md5s).
    """
    algorithm, _, expected = (checksum or "sha256:").partition(":")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(algorithm)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    tmp.write(chunk)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    if not digest.hexdigest().startswith(expected):
        Path(tmp.name).unlink(missing_ok=True)
        raise OSError(f"checksum mismatch for {url}: {algorithm} {digest.hexdigest()[:12]}..., "
                      f"expected {expected[:12]}...")
    shutil.move(tmp.name, dest)
    return dest


def first_existing(paths: Sequence[Path]) -> Path | None:
    """The first of ``paths`` that exists, else None."""
    return next((p for p in paths if p.exists()), None)


def not_found(what: str, looked: Sequence[Path], url: str, reason: str,
              fix: str) -> DataNotFoundError:
    """A :class:`DataNotFoundError` naming every place looked at and how to fix it."""
    places = "\n".join(f"  - {p}" for p in looked)
    return DataNotFoundError(
        f"{what} not found.\nLooked for a local copy in:\n{places}\n"
        f"Download from {url} failed: {reason}.\nTo fix: {fix}\n"
        f"(The data directory is ${DATA_ENV}, now {data_dir()}; see data/README.md.)"
    )


def try_download(fetch, url: str) -> tuple[object | None, str]:
    """Run ``fetch()`` if ``url`` is reachable; return (result, reason for failure)."""
    start = time.monotonic()
    if not reachable(url):
        return None, f"no connection to {url} within {time.monotonic() - start:.1f} s"
    try:
        return fetch(), ""
    except Exception as err:
        return None, f"{type(err).__name__}: {err}"


def balanced_subset(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` items with classes as balanced as possible (all items if ``n`` is None).

    Deterministic for a seed; the returned indices are sorted so the original order is kept.
    ``n`` larger than the split is an error, not a silent cap.
    """
    labels = np.asarray(labels)
    if n is None:
        return np.arange(len(labels))
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"subset size must be an int >= 1 or None (all), got {n!r}")
    if n > len(labels):
        raise ValueError(f"asked for {n} items but the split has {len(labels)}; pass None for "
                         "all of them or a smaller size")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    # round-robin over classes: item j of every class before item j+1 of any class
    order = [idx[j] for j in range(max(map(len, per_class))) for idx in per_class if j < len(idx)]
    return np.sort(np.asarray(order[:n]))


def read_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the npz file at ``path``; a damaged file raises DataNotFoundError.

    The message names the file and what to do (delete it and run again to download a fresh
    copy, or point ``$XAI_DATA_DIR`` to another copy) instead of a bare zip or zlib error.
    """
    try:
        with np.load(path) as f:
            arrays = {key: f[key] for key in keys}
        bad = [key for key, value in arrays.items() if not isinstance(value, np.ndarray)]
        if bad:
            raise ValueError(f"{bad} are not numpy arrays")
        return arrays
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DataNotFoundError(
            f"{path} is damaged or incomplete ({type(err).__name__}: {err}). Delete it and run "
            f"again to download a fresh copy, or point ${DATA_ENV} to a folder with a good "
            "copy.") from err
