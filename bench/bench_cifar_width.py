"""Time-to-accuracy of the CIFAR-10 ResNet-18 by width and precision (a benchmark, not a test).

Trains ``helpers.torch.models.resnet18_cifar(width)`` with the very code of the notebooks
(``helpers.torch.train.train``, the fast profile's recipe: OneCycle, label smoothing, crop + flip,
channels_last, :func:`helpers.torch.train.mixed_precision`) on the training split minus the
validation share ``load_or_train`` holds out, and prints after every epoch the cumulative wall time
and the validation accuracy, then the test accuracy of the kept model once at the end (choices on
validation, the test split once). ``--precision fp32`` turns mixed precision off, to measure what
it buys. Everything printed is measured in this run. The full training split at width 64 takes
hours on a laptop CPU: pick the widths and sizes with the options.

    python bench/bench_cifar_width.py --widths 16 --epochs 6
    python bench/bench_cifar_width.py --widths 16 --epochs 4 --precision fp32
    python bench/bench_cifar_width.py --widths 64 --train-size 5000 --epochs 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses

import torch

from helpers.core.stats import accuracy
from helpers.data import load_cifar10
from helpers.profile import FAST
from helpers.torch import train as torch_train
from helpers.torch.models import resnet18_cifar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--epochs", type=int, default=FAST.cifar_epochs)
    parser.add_argument("--batch-size", type=int, default=FAST.cifar_batch_size)
    parser.add_argument("--train-size", type=int, default=None, help="default: all 50,000")
    parser.add_argument("--test-size", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--max-lr", type=float, default=None, help="default: the profile's")
    parser.add_argument("--precision", choices=("mixed", "fp32"), default="mixed",
                        help="mixed: helpers.torch.train.mixed_precision (default); fp32: off")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.7, 0.78, 0.8])
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.precision == "fp32":
        torch_train.mixed_precision = lambda device: contextlib.nullcontext()
    data = load_cifar10(args.train_size, args.test_size)
    train_set, val_set = torch_train.split_validation(data.train, torch_train.VAL_FRACTION)
    profile = dataclasses.replace(FAST, cifar_epochs=args.epochs, cifar_batch_size=args.batch_size)
    print(f"{data.source}; {len(train_set)} training, {len(val_set)} validation and "
          f"{len(data.test)} test images; {torch.get_num_threads()} threads on {device}; "
          f"precision {args.precision}")
    rows = []
    for width in args.widths:
        config = dataclasses.replace(torch_train.config_for(profile), width=width)
        if args.max_lr is not None:
            config = dataclasses.replace(config, max_lr=args.max_lr)
        torch.manual_seed(config.seed)
        model = resnet18_cifar(width, weights=None)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        result = torch_train.train(model, train_set, val_set, config, device)
        for epoch, (acc, sec) in enumerate(zip(result.history["val_accuracy"],
                                               result.history["seconds"], strict=True), 1):
            print(f"width {width:3d} ({params:.2f} M) epoch {epoch}: {sec:7.1f} s, "
                  f"validation accuracy {acc:.1%}, {len(train_set) * epoch / sec:.0f} img/s")
        test = accuracy(*torch_train.predict(model, data.test, device))
        print(f"width {width:3d}: test accuracy of the kept model {test:.1%} "
              f"({len(data.test)} images), training {result.seconds:.0f} s")
        rows.append((width, result.history))
    print("\nseconds to reach each validation accuracy (-: not reached)")
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
