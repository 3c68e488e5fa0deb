"""A save on a disk that refuses to grow (a real kernel limit, not a mock) keeps the model.

Each run is a fresh process with ``RLIMIT_FSIZE`` below the checkpoint's size and SIGXFSZ
ignored, so every write past the limit fails in the kernel (EFBIG), C libraries included: the
way h5py's finalizers used to crash the process after a full disk (exit 139) would show here.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = {
    "torch": "from helpers.torch.models import resnet18_cifar\n"
             "from helpers.torch.train import weights_bytes\n"
             "model = resnet18_cifar(8, weights=None)\n",
    "keras": "import keras\n"
             "from helpers.keras.train import weights_bytes\n"
             "model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),\n"
             "                          keras.layers.Flatten(), keras.layers.Dense(40)])\n",
}
SAVE = """
import gc, resource, signal
from helpers import checkpoints
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
print(checkpoints.save_or_keep("m", SUFFIX, lambda: weights_bytes(model), {}))
del model
gc.collect()
print("vivo")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("track", sorted(BUILD))
def test_a_save_past_the_disk_limit_keeps_the_model_and_the_process(track, tmp_path):
    suffix = ".pt" if track == "torch" else ".weights.h5"
    script = BUILD[track] + SAVE.replace("SUFFIX", repr(suffix))
    env = {**os.environ, "XAI_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "File too large" in done.stdout and "sigue en memoria" in done.stdout
    assert done.stdout.strip().endswith("vivo") and "Exception ignored" not in done.stderr
    assert list((tmp_path / "checkpoints").iterdir()) == []  # the partial file was removed
