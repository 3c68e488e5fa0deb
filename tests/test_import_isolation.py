"""Framework isolation: importing TensorFlow before torchvision crashes some installs, so the
light modules import no framework and the Keras-track modules never import torch."""

import subprocess
import sys

import pytest

KERAS_TRACK = ["helpers.keras_train", "helpers.perturb", "helpers.tables", "helpers.checks",
               "helpers.plots", "helpers.metrics", "helpers.keras_explain", "helpers.keras_models",
               "helpers.keras_metrics", "helpers.keras_sanity", "helpers.augment",
               "helpers.tf_data", "helpers.sanity"]
FRAMEWORK_FREE = ["helpers", "helpers.data", "helpers.profile", "helpers.normalization",
                  "helpers.metrics", "helpers.sanity", "helpers.checks"]


def _run(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]


def test_keras_track_modules_do_not_import_torch():
    _run(f"import sys; import {', '.join(KERAS_TRACK)}; "
         "assert 'torch' not in sys.modules, 'torch imported'")


@pytest.mark.parametrize("module", FRAMEWORK_FREE)
def test_light_modules_import_no_framework(module):
    _run(f"import sys, {module}; "
         "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules, "
         "[m for m in ('torch', 'tensorflow') if m in sys.modules]")
