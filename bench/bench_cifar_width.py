"""Time-to-accuracy of the CIFAR-10 ResNet-18 at several widths (a benchmark, not a test).

Trains ``helpers.torch.models.resnet18_cifar(width)`` with the very code of the notebooks
(``helpers.torch.train.train``, the fast profile's recipe: OneCycle, label smoothing, crop + flip,
channels_last) and prints, after every epoch, the cumulative wall time and the accuracy on the test
images, so widths can be compared by the time they need to reach an accuracy. Everything printed
is measured in this run. The full training split at width 64 takes hours on a laptop CPU: pick the
widths and sizes with the options.

    python bench/bench_cifar_width.py --widths 16 32 --epochs 4
    python bench/bench_cifar_width.py --widths 64 --train-size 5000 --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from helpers.data import load_cifar10
from helpers.profile import FAST
from helpers.torch.models import resnet18_cifar
from helpers.torch.train import config_for, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--epochs", type=int, default=FAST.cifar_epochs)
    parser.add_argument("--batch-size", type=int, default=FAST.cifar_batch_size)
    parser.add_argument("--train-size", type=int, default=None, help="default: all 50,000")
    parser.add_argument("--test-size", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--max-lr", type=float, default=None, help="default: the profile's")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.6, 0.7, 0.78])
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_cifar10(args.train_size, args.test_size)
    profile = dataclasses.replace(FAST, cifar_epochs=args.epochs, cifar_batch_size=args.batch_size)
    print(f"{data.source}; {len(data.train)} training and {len(data.test)} test images; "
          f"{torch.get_num_threads()} threads on {device}")
    rows = []
    for width in args.widths:
        config = dataclasses.replace(config_for(profile), width=width)
        if args.max_lr is not None:
            config = dataclasses.replace(config, max_lr=args.max_lr)
        model = resnet18_cifar(width, weights=None)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        # the test split stands in for validation: each epoch's test accuracy is recorded
        result = train(model, data.train, data.test, config, device)
        for epoch, (acc, sec) in enumerate(zip(result.history["val_accuracy"],
                                               result.history["seconds"], strict=True), 1):
            print(f"width {width:3d} ({params:.2f} M) epoch {epoch}: {sec:7.1f} s, "
                  f"test accuracy {acc:.1%}, {len(data.train) * epoch / sec:.0f} img/s")
        rows.append((width, result.history))
    print("\nseconds to reach each test accuracy (-: not reached)")
    print("width " + " ".join(f"{t:>8.0%}" for t in args.targets))
    for width, history in rows:
        cells = []
        for target in args.targets:
            hit = [s for a, s in zip(history["val_accuracy"], history["seconds"], strict=True)
                   if a >= target]
            cells.append(f"{hit[0]:8.0f}" if hit else f"{'-':>8}")
        print(f"{width:5d} " + " ".join(cells))


if __name__ == "__main__":
    main()
