"""Resolution order of datasets and weights: local copy, download, clear error within a bound."""

import hashlib
import io
import os
import socket
import threading
import time

import numpy as np
import pytest

from helpers.data import DataNotFoundError, balanced_subset, fetch_weights, resolve, weights


def _no_network(*_args, **_kwargs):
    raise AssertionError("the network must not be touched when a local copy exists")


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_local_copy_is_used_without_network(dirs, monkeypatch):
    data, _ = dirs
    local = data / "weights" / "resnet20-12fca82f.th"
    local.parent.mkdir()
    local.write_bytes(b"x")
    monkeypatch.setattr(resolve.urllib.request, "urlopen", _no_network)
    assert fetch_weights("resnet20_cifar10") == local


def test_framework_cache_is_a_local_copy_too(dirs, tmp_path, monkeypatch):
    cached = tmp_path / "keras" / "models" / "efficientnetb0_notop.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    monkeypatch.setattr(resolve.urllib.request, "urlopen", _no_network)
    assert fetch_weights("efficientnet_b0_imagenet") == cached


def _mock_server(monkeypatch, payload: bytes):
    calls = []

    def urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        calls.append((url, timeout))
        return _FakeResponse(payload)

    monkeypatch.setattr(resolve.urllib.request, "urlopen", urlopen)
    return calls


def test_download_when_no_local_copy(dirs, monkeypatch):
    data, _ = dirs
    payload = b"fake weights"
    spec = weights.WEIGHTS["resnet20_cifar10"]
    monkeypatch.setitem(weights.WEIGHTS, "resnet20_cifar10", weights.WeightFile(
        spec.filename, spec.url, "torch", "sha256:" + hashlib.sha256(payload).hexdigest()[:8]))
    calls = _mock_server(monkeypatch, payload)
    path = fetch_weights("resnet20_cifar10")
    assert path == data / "weights" / spec.filename and path.read_bytes() == payload
    assert {url for url, _ in calls} == {spec.url}
    assert all(t is not None and t <= 30 for _, t in calls)


def test_download_goes_to_cache_when_data_dir_is_read_only(dirs, monkeypatch):
    data, cache = dirs
    if os.geteuid() == 0:  # root ignores permissions: simulate a read-only directory
        monkeypatch.setattr(resolve.os, "access", lambda p, mode: False)
    else:
        data.chmod(0o555)
    _mock_server(monkeypatch, b"abc")
    spec = weights.WeightFile("w.bin", "https://x/w.bin", "torch", None)
    monkeypatch.setitem(weights.WEIGHTS, "w", spec)
    try:
        assert fetch_weights("w") == cache / "weights" / "w.bin"
    finally:
        data.chmod(0o755)


def test_checksum_mismatch_is_an_error_and_leaves_no_file(dirs, monkeypatch):
    data, _ = dirs
    _mock_server(monkeypatch, b"corrupted")
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        fetch_weights("resnet20_cifar10")
    assert not list((data / "weights").glob("*"))


def test_clear_error_lists_every_place_and_the_fix(dirs, monkeypatch):
    monkeypatch.setattr(resolve, "reachable", lambda url, timeout=0: False)
    with pytest.raises(DataNotFoundError) as err:
        fetch_weights("mobilenet_025_imagenet")
    message = str(err.value)
    for place in weights.WEIGHTS["mobilenet_025_imagenet"].local_candidates():
        assert str(place) in message
    assert weights.WEIGHTS["mobilenet_025_imagenet"].url in message
    assert "To fix" in message and "XAI_DATA_DIR" in message


def test_unknown_weights_name_lists_known_ones():
    with pytest.raises(ValueError, match="resnet18_imagenet"):
        fetch_weights("resnet19")


@pytest.fixture
def silent_server():
    """A loopback TCP server that accepts connections and never answers (a stalled network)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    conns, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/weights.bin"
    stop.set()
    thread.join()
    for c in conns:
        c.close()
    server.close()


def test_stalled_network_fails_within_the_time_bound(dirs, monkeypatch, silent_server):
    monkeypatch.setattr(resolve, "CONNECT_TIMEOUT_S", 1.0)
    spec = weights.WeightFile("w.bin", silent_server, "torch", None)
    monkeypatch.setitem(weights.WEIGHTS, "w", spec)
    start = time.monotonic()
    with pytest.raises(DataNotFoundError, match="no connection"):
        fetch_weights("w")
    assert time.monotonic() - start < 5.0


def test_default_connect_timeout_keeps_the_error_under_30_s():
    # one reachability probe plus at most one stalled read, each bounded by the timeout
    assert 2 * resolve.CONNECT_TIMEOUT_S < 30


@pytest.mark.parametrize("n", [1, 7, 10, 25, 40])
def test_balanced_subset_is_balanced_sorted_and_deterministic(n):
    labels = np.repeat(np.arange(5), 8)[np.random.default_rng(3).permutation(40)]
    idx = balanced_subset(labels, n, seed=1)
    assert len(idx) == n and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=5)
    assert counts.max() - counts.min() <= 1
    assert np.array_equal(idx, balanced_subset(labels, n, seed=1))


def test_balanced_subset_none_means_all_and_rejects_nonpositive():
    assert np.array_equal(balanced_subset(np.zeros(4), None), np.arange(4))
    with pytest.raises(ValueError):
        balanced_subset(np.zeros(4), 0)
