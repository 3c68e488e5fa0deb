"""Cost of the subsampled shortcut convolutions (a benchmark, not a test).

Times one mixed-precision training step (forward + backward, channels_last) of the fast
profile's ResNet-18 with its strided 1x1 shortcut convolutions as this package computes them
(:class:`helpers.torch.pointwise.SubsampledPointwiseConv2d`) and as plain strided ``nn.Conv2d``
(oneDNN's own strided kernel, wrong on AVX2 CPUs below 8 input channels), interleaved, and
prints the medians and their ratio. Run it again under ``ONEDNN_MAX_CPU_ISA=AVX2`` for the AVX2
kernels.

    python bench/bench_pointwise.py --width 16 --batch 256
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from helpers.core.timing import Timing, time_repeated
from helpers.torch.models import resnet18_cifar
from helpers.torch.pointwise import SubsampledPointwiseConv2d
from helpers.torch.train import mixed_precision, precision_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    device = torch.device("cpu")
    torch.manual_seed(0)
    models = {"subsampled": resnet18_cifar(args.width, weights=None),
              "strided": resnet18_cifar(args.width, weights=None)}
    for module in models["strided"].modules():
        if type(module) is SubsampledPointwiseConv2d:
            module.__class__ = nn.Conv2d
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.arange(args.batch) % 10

    def step(model: nn.Module) -> None:
        with mixed_precision(device):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        model.zero_grad(set_to_none=True)

    for model in models.values():
        model.to(memory_format=torch.channels_last).train()
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):  # interleaved, so drifts of the machine hit both alike
        for name, model in models.items():
            seconds[name] += time_repeated(lambda m=model: step(m), 1, 1).seconds
    print(f"ResNet-18 width {args.width}, batch {args.batch}, {precision_name(device)}, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats after a warm-up each:")
    medians = {name: Timing(tuple(s)).median for name, s in seconds.items()}
    for name, s in seconds.items():
        print(f"  {name:>10}: median {medians[name]:.3f} s per step "
              f"(range {min(s):.3f}-{max(s):.3f})")
    print(f"  subsampled / strided: {medians['subsampled'] / medians['strided']:.2f}x")


if __name__ == "__main__":
    main()
