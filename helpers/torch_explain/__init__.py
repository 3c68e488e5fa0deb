"""Batched attribution methods for PyTorch image classifiers (one small module per method).

All functions take ``model`` and a batch ``x`` [N,C,H,W] in the model's input space, explain the
target's logit (occlusion: its softmax probability), return float32 CPU tensors and leave the
model (train/eval mode, ``requires_grad``), its hooks and ``x`` as they were.
"""

from helpers.torch_explain._grad_cam import grad_cam
from helpers.torch_explain._guided_backprop import guided_backprop
from helpers.torch_explain._guided_grad_cam import guided_grad_cam
from helpers.torch_explain._integrated_gradients import integrated_gradients
from helpers.torch_explain._occlusion import occlusion
from helpers.torch_explain._saliency import saliency
from helpers.torch_explain._smoothgrad import smoothgrad

__all__ = [
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "occlusion",
    "saliency",
    "smoothgrad",
]
