"""Checkpoints: atomic saves, every fault detected with one clear line, shipped copies first."""

import io
import json
import os
import stat
import time

import numpy as np
import pytest
from faults import full_disk_after

from helpers import checkpoints as ck

KEY = {"epochs": 3, "n_train": 100}



def write_array(value):
    def serialize():
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value, dtype=np.float32))
        return buffer.getvalue()
    return serialize


def load_array(path):
    arr = np.load(path)
    if not np.isfinite(arr).all():
        raise ck.CheckpointError("tiene pesos no finitos (NaN o infinito)")
    return arr


def test_save_then_load_round_trip(dirs):
    path = ck.save("m", ".npy", write_array([1.0, 2.0]), {"key": KEY, "accuracy": 0.5})
    assert path == dirs[1] / "checkpoints" / "m.npy"
    meta = json.loads((path.parent / "m.json").read_text())
    assert meta["sha256"] == ck.sha256_of(path) and meta["accuracy"] == 0.5
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.json", "m.npy"]  # no temp left
    said = []
    model, meta = ck.load_first("m", ".npy", KEY, load_array, said.append)
    np.testing.assert_array_equal(model, [1.0, 2.0])
    assert meta["source"] == "caché" and said == []


@pytest.mark.parametrize("failure", ["disk full mid-file", "serializer RuntimeError",
                                     "serializer h5py-like error", "metadata write"])
def test_a_failed_save_leaves_nothing_behind_keeps_the_old_checkpoint_and_says_so(
        dirs, monkeypatch, failure):
    ck.save("m", ".npy", write_array([1.0]), {"key": KEY})
    serialize = write_array(np.arange(1000.0))
    said = []
    with monkeypatch.context() as patch:
        if failure == "disk full mid-file":
            patch.setattr("builtins.open", full_disk_after(100))
        elif failure == "metadata write":
            patch.setattr("builtins.open", full_disk_after(4200))  # weights fit, the json not
        else:
            error = RuntimeError if "Runtime" in failure else KeyError

            def serialize():
                raise error("[enforce fail at inline_container.cc:603] . unexpected pos")
        assert ck.save_or_keep("m", ".npy", serialize, {"key": KEY}, said.append) == {}
    folder = dirs[1] / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["m.json", "m.npy"]  # no partial file
    model, _ = ck.load_first("m", ".npy", KEY, load_array, print)
    np.testing.assert_array_equal(model, [1.0])  # the previous checkpoint is intact
    (line,) = said
    assert "no se pudo guardar" in line and "sigue en memoria" in line and "XAI_CACHE_DIR" in line


def test_save_or_keep_returns_where_it_saved(dirs):
    saved = ck.save_or_keep("m", ".npy", write_array([2.0]), {"key": KEY}, print)
    assert saved["checkpoint"].endswith("m.npy") and len(saved["sha256"]) == 64


def test_temporaries_of_a_killed_save_are_removed_but_not_a_running_one(dirs):
    folder = dirs[1] / "checkpoints"
    folder.mkdir(parents=True)
    old, fresh = folder / ".m.abc.tmp.npy", folder / ".m.def.tmp.json"
    old.write_bytes(b"half a checkpoint")
    fresh.write_bytes(b"being written by another process")
    before = time.time() - 3600
    os.utime(old, (before, before))
    ck.save("m", ".npy", write_array([1.0]), {"key": KEY})
    assert not old.exists() and fresh.exists()


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("fault", "reason"), [
    (corrupt, "sha256"),
    (lambda p: p.write_bytes(p.read_bytes()[:20]), "sha256"),
    (lambda p: p.write_bytes(b""), "vacío"),
    (lambda p: p.unlink(), "falta su archivo de pesos"),
    (lambda p: (p.parent / "m.json").write_text("{not json"), "metadatos no se pueden leer"),
    (lambda p: (p.parent / "m.json").unlink(), "faltan sus metadatos"),
])
def test_every_damaged_checkpoint_is_skipped_with_its_reason(dirs, fault, reason):
    path = ck.save("m", ".npy", write_array([1.0, 2.0]), {"key": KEY})
    fault(path)
    said = []
    assert ck.load_first("m", ".npy", KEY, load_array, said.append) is None
    assert len(said) == 1 and reason in said[0] and "Se vuelve a entrenar" in said[0]
    assert str(path) in said[0]


def test_another_configuration_names_what_differs(dirs):
    ck.save("m", ".npy", write_array([1.0]), {"key": KEY})
    said = []
    assert ck.load_first("m", ".npy", {**KEY, "epochs": 4}, load_array, said.append) is None
    assert "otra configuración (difiere en: epochs)" in said[0]


def test_non_finite_weights_and_unloadable_files_are_skipped(dirs):
    ck.save("m", ".npy", write_array([1.0, np.nan]), {"key": KEY})
    said = []
    assert ck.load_first("m", ".npy", KEY, load_array, said.append) is None
    assert "no finitos" in said[0]

    def wrong_variant(path):
        raise KeyError("layer 'logits' has 5 outputs, the file 3")

    ck.save("m", ".npy", write_array([1.0]), {"key": KEY})
    assert ck.load_first("m", ".npy", KEY, wrong_variant, said.append) is None
    assert "no se pudo cargar (KeyError" in said[1]


def test_shipped_checkpoint_wins_and_is_read_only(dirs):
    data, cache = dirs
    ck.save("m", ".npy", write_array([7.0]), {"key": KEY})
    shipped = data / "checkpoints"
    (cache / "checkpoints").rename(shipped)  # as an instructor would copy it
    ck.save("m", ".npy", write_array([1.0]), {"key": KEY})  # this machine's own training
    for path in shipped.iterdir():
        path.chmod(stat.S_IRUSR)
    shipped.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        model, meta = ck.load_first("m", ".npy", KEY, load_array, print)
        np.testing.assert_array_equal(model, [7.0])
        assert meta["source"] == "distribuido con los datos"
        said = []  # a shipped checkpoint of another configuration: ignored, the cache is used
        other = {**KEY, "n_train": 5}
        ck.save("m", ".npy", write_array([3.0]), {"key": other})
        model, meta = ck.load_first("m", ".npy", other, load_array, said.append)
        np.testing.assert_array_equal(model, [3.0])
        assert str(shipped / "m.npy") in said[0] and "difiere en: n_train" in said[0]
    finally:
        shipped.chmod(stat.S_IRWXU)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_unwritable_cache_is_reported_before_training(dirs):
    cache = dirs[1]
    cache.mkdir()
    cache.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert "no se puede escribir" in ck.cache_problem()
    finally:
        cache.chmod(stat.S_IRWXU)


def test_cache_under_a_file_is_reported_before_training(dirs, monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("XAI_CACHE_DIR", str(blocker / "cache"))
    problem = ck.cache_problem()
    assert "no se puede escribir" in problem and "XAI_CACHE_DIR" in problem
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path / "fine"))
    assert ck.cache_problem() is None
