"""Where data lives and how it is found: local copy, then download, then a clear error.

The data directory is ``$XAI_DATA_DIR`` (default ``<repo>/data`` in a checkout of the
repository, ``~/xai_data`` when the package is installed elsewhere); it may be read-only. Things
the project writes (downloads when the data directory is read-only, trained checkpoints) go to the
cache directory, ``$XAI_CACHE_DIR`` (default ``cache/`` inside that default). Lesson:
``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
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
    """The local data directory (``$XAI_DATA_DIR``, default :data:`DEFAULT_DATA_DIR`)."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR).expanduser().resolve()


def cache_root() -> Path:
    """The cache directory's path (``$XAI_CACHE_DIR``, default ``cache/`` in the default data
    directory), not created."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_DATA_DIR / "cache").expanduser().resolve()


def cache_dir() -> Path:
    """A writable directory for downloads and trained checkpoints (created on demand)."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def download_dir() -> Path:
    """Where downloads go: the data directory if writable, else the cache directory."""
    root = data_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return cache_dir()
    return root if os.access(root, os.W_OK) else cache_dir()


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


def download(url: str, dest: Path, sha256_prefix: str | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, checking the sha256 prefix when given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    tmp.write(chunk)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
        Path(tmp.name).unlink(missing_ok=True)
        raise OSError(f"checksum mismatch for {url}: got {digest.hexdigest()[:12]}...")
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
    """
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    # round-robin over classes: item j of every class before item j+1 of any class
    order = [idx[j] for j in range(max(map(len, per_class))) for idx in per_class if j < len(idx)]
    return np.sort(np.asarray(order[:n]))
