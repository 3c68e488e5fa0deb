"""Trained checkpoints of both tracks: verified on load, written atomically, shippable.

Lessons: ``01_cifar10_modelo.ipynb`` (the ResNet-18) and ``13_entrenamiento_y_comparacion.ipynb``
(the Flowers102 variants). Framework-neutral: the tracks pass functions that write and read their
weight files (``helpers.torch.train``, ``helpers.keras.train``).

A checkpoint is two files with one stem: the weights (``<stem>.pt``, ``<stem>.weights.h5``) and
``<stem>.json``, whose ``key`` holds everything that defines the run (configuration, data sizes)
and whose ``sha256`` is that of the weight file.

* Lookup (:func:`load_first`): ``$XAI_DATA_DIR/checkpoints/`` first (read-only: for example the
  full-profile models an instructor trained once on a GPU and copied there, see
  ``make checkpoints``), then the cache ``$XAI_CACHE_DIR/checkpoints/``. A checkpoint is used only
  when its metadata reads, its key equals this run's, its weights match the sha256 and load, and
  every weight is finite; otherwise one line says which file is skipped and why.
* Saving (:func:`save`, :func:`save_or_keep`): the framework serializes the weights in memory;
  only then are bytes written, by this module, to unique temporary names that are renamed into
  place, weights first and metadata last, so an interrupted save never leaves half a checkpoint.
  Any failure (a full disk mid-file, a serializer error of any type) removes the partial files
  and keeps the trained model in memory with one Spanish line saying why. Temporary files that
  an earlier, killed process left behind are removed. :func:`cache_problem` is asked before
  training, so a cache that cannot be written is reported before, not after, the training.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from helpers import __version__
from helpers.data.resolve import CACHE_ENV, cache_root, data_dir

T = TypeVar("T")
FOLDER = "checkpoints"
STARTED = time.time()  # temporaries older than this belong to a process that no longer writes


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted (the message says why)."""


def shipped_dir() -> Path:
    """Read-only checkpoints shipped with the data: ``$XAI_DATA_DIR/checkpoints``."""
    return data_dir() / FOLDER


def cache_folder() -> Path:
    """Where this machine's trained checkpoints go: ``$XAI_CACHE_DIR/checkpoints`` (not created)."""
    return cache_root() / FOLDER


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cache_problem() -> str | None:
    """None when a checkpoint can be written to :func:`cache_folder`, else why not (Spanish)."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return (f"no se puede escribir en {folder} ({type(err).__name__}: {err.strerror or err}); "
                f"el modelo entrenado se conservará solo en memoria durante esta sesión. Para "
                f"guardarlo, apunta ${CACHE_ENV} a una carpeta con permiso de escritura")
    return None


def require_finite(arrays: Iterable[tuple[str, Any]]) -> None:
    """CheckpointError naming the first weight array ``(name, numpy array)`` with NaN or inf."""
    for name, array in arrays:
        if not np.isfinite(array).all():
            raise CheckpointError(f"tiene pesos no finitos (NaN o infinito) en {name}")


def _read_meta(meta_path: Path, weights: Path, key: dict) -> dict:
    """The metadata of a checkpoint, or CheckpointError saying why it cannot be used."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"sus metadatos no se pueden leer ({type(err).__name__})") from err
    if not isinstance(meta, dict) or "key" not in meta or "sha256" not in meta:
        raise CheckpointError("sus metadatos no tienen el formato esperado")
    if meta["key"] != key:
        old = meta["key"] if isinstance(meta["key"], dict) else {}
        changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        raise CheckpointError(f"se entrenó con otra configuración (difiere en: "
                              f"{', '.join(changed) or 'key'})")
    if not weights.is_file():
        raise CheckpointError(f"falta su archivo de pesos {weights.name}")
    if weights.stat().st_size == 0:
        raise CheckpointError("su archivo de pesos está vacío")
    if sha256_of(weights) != meta["sha256"]:
        raise CheckpointError("sus pesos no coinciden con su sha256 (archivo dañado o truncado)")
    return meta


def load_first(stem: str, suffix: str, key: dict, load: Callable[[Path], T],
               say: Callable[[str], Any] = print) -> tuple[T, dict] | None:
    """``(load(weights), metadata)`` of the first trustworthy checkpoint, or None.

    ``load`` builds the model from a weight file; it raises (any exception, e.g.
    :class:`CheckpointError` for non-finite weights) when the file does not fit. Every skipped
    checkpoint is reported through ``say`` with its path and the reason.
    """
    for source, folder in (("distribuido con los datos", shipped_dir()), ("caché", cache_folder())):
        weights, meta_path = folder / f"{stem}{suffix}", folder / f"{stem}.json"
        if not meta_path.exists() and not weights.exists():
            continue
        try:
            if not meta_path.exists():
                raise CheckpointError(f"faltan sus metadatos {meta_path.name}")
            meta = _read_meta(meta_path, weights, key)
            model = load(weights)
        except Exception as err:  # any bad file: skip it, say why, and retrain
            reason = str(err) if isinstance(err, CheckpointError) else \
                f"no se pudo cargar ({type(err).__name__}: {str(err)[:200]})"
            say(f"Se ignora el punto de control {weights} ({source}): {reason}. "
                "Se vuelve a entrenar.")
            continue
        return model, {**meta, "checkpoint": str(weights), "source": source}
    return None


def save(stem: str, suffix: str, serialize: Callable[[], bytes], meta: dict) -> Path:
    """Write a checkpoint to the cache; returns the weights' path.

    ``serialize()`` gives the weight file's bytes, made in memory, so a full disk can only fail
    this module's own writes, whose partial files are always removed. The metadata gains
    ``sha256``, ``weights`` (the file name) and ``package_version``. Raises whatever failed:
    :func:`save_or_keep` turns that into one Spanish line.
    """
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    payload = serialize()
    token = uuid.uuid4().hex
    tmp_weights = folder / f".{stem}.{token}.tmp{suffix}"
    tmp_meta = folder / f".{stem}.{token}.tmp.json"
    weights, meta_path = folder / f"{stem}{suffix}", folder / f"{stem}.json"
    try:
        _write(tmp_weights, payload)
        full = {**meta, "sha256": hashlib.sha256(payload).hexdigest(), "weights": weights.name,
                "package_version": __version__}
        _write(tmp_meta, json.dumps(full, indent=1, default=float).encode())
        os.replace(tmp_weights, weights)
        os.replace(tmp_meta, meta_path)
    finally:
        tmp_weights.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
    return weights


def save_or_keep(stem: str, suffix: str, serialize: Callable[[], bytes], meta: dict,
                 say: Callable[[str], Any] = print) -> dict:
    """:func:`save`, never losing the model: returns ``{"checkpoint", "sha256"}`` when saved;
    on any failure says why in one line and returns ``{}`` (the caller keeps the model)."""
    try:
        payload = serialize()
        path = save(stem, suffix, lambda: payload, meta)
    except Exception as err:  # torch, h5py, the filesystem: whatever fails, keep the model
        reason = getattr(err, "strerror", None) or str(err)[:200] or type(err).__name__
        say(f"Aviso: no se pudo guardar el modelo en {cache_folder()} ({type(err).__name__}: "
            f"{reason}); no queda ningún archivo a medias y el modelo entrenado sigue en memoria "
            f"en esta sesión. Para guardarlo la próxima vez, libera espacio o apunta ${CACHE_ENV} "
            "a otra carpeta.")
        return {}
    return {"checkpoint": str(path), "sha256": hashlib.sha256(payload).hexdigest()}  # no reread


class Resumable:
    """The state of an unfinished training run, saved after every epoch as ``<stem><suffix>`` in
    the cache (:func:`save`) and used only with an equal ``key``.

    ``serialize(state) -> bytes`` and ``read(path) -> state`` are the framework's; a state is a
    dict whose ``"epoch"`` counts the finished epochs (plus ``"offset"``, epochs of an earlier
    stage, if any).
    """

    def __init__(self, stem: str, key: dict, say: Callable[[str], Any], suffix: str,
                 serialize: Callable[[dict], bytes], read: Callable[[Path], dict],
                 enabled: bool = True) -> None:
        self.stem, self.key, self.say, self.suffix = stem, key, say, suffix
        self.serialize, self.read, self.enabled, self.warned = serialize, read, enabled, False

    def load(self, epochs: int) -> dict | None:
        """The saved state, announced, or None (``epochs``: the run's total, for the message)."""
        found = load_first(self.stem, self.suffix, self.key, self.read, self.say)
        if found is None:
            return None
        state, meta = found
        done = state["epoch"] + state.get("offset", 0)
        self.say(f"Se reanuda un entrenamiento interrumpido: {done} de {epochs} épocas ya hechas "
                 f"(guardadas en {meta['checkpoint']}); sigue en la época {done + 1}.")
        return state

    def keep(self, state: dict) -> None:
        """Save ``state``; a failure is said once and training goes on."""
        if not self.enabled:
            return
        try:
            save(self.stem, self.suffix, lambda: self.serialize(state),
                 {"key": self.key, "epoch": state["epoch"]})
        except Exception as err:  # a full disk must not stop the training itself
            if not self.warned:
                self.say(f"Aviso: no se pudo guardar el estado para reanudar "
                         f"({type(err).__name__}: {err}); el entrenamiento sigue, pero si se "
                         "interrumpe empezará de nuevo.")
            self.warned = True

    def discard(self) -> None:
        """Remove the saved state (the run finished and its model is saved)."""
        for suffix in (self.suffix, ".json"):
            (cache_folder() / f"{self.stem}{suffix}").unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.<stem>.<token>.tmp*`` files of saves that a killed process left behind
    (older than this process); returns them."""
    stale = [p for p in folder.glob(".*.tmp*") if p.is_file() and p.stat().st_mtime < STARTED]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _write(path: Path, payload: bytes) -> None:
    """Write ``payload`` and flush it to the disk (a full disk fails here, not later)."""
    with open(path, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
