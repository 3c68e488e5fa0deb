"""Shared test setup.

torchvision is imported first on purpose: importing TensorFlow before torchvision in one process
crashes (see ../shared/ENVIRONMENT.md), and test files that use TensorFlow may run before the
torch ones. Time limits per test: ``tests/time_limits.py``.
"""

import pytest
import torchvision  # noqa: F401  (import order matters, see above)


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty data dir and cache dir, and framework caches pointed away from $HOME."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("XAI_DATA_DIR", str(data))
    monkeypatch.setenv("XAI_CACHE_DIR", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return data, cache
