"""Shared test setup.

torchvision is imported first on purpose: importing TensorFlow before torchvision in one process
crashes (see ../shared/ENVIRONMENT.md), and test files that use TensorFlow may run before the
torch ones.
"""

import torchvision  # noqa: F401  (import order matters, see above)
