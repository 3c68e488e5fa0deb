"""Time ``helpers.torch_explain`` against Captum and a one-image-at-a-time loop.

For a batch of random CIFAR-sized images on ``resnet18_cifar(weights=None)`` (eval mode) it
times, for every method: our batched call, Captum with its default batching, our call looped
over the images one by one (like a naive seed), and the bare forward/backward passes the method
needs (same number of images, same chunking, nothing else). Medians of ``--repeats`` runs,
all measured in the same process. Not a test: ``python bench/bench_explainers.py [-h]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.torch import explain as te
from helpers.torch.explain import window_starts
from helpers.torch.models import resnet18_cifar


def median_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function; the repeats go round-robin over the functions so
    that a noisy spell on the machine hits all of them alike."""
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def passes(model: torch.nn.Module, x: torch.Tensor, total: int, chunk: int,
           backward: bool) -> None:
    """``total`` images through the model in chunks, with or without an input gradient."""
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        xb = x[torch.arange(start, start + n) % len(x)]
        if backward:
            xb.requires_grad_()
            torch.autograd.grad(model(xb)[:, 0].sum(), xb)
        else:
            with torch.inference_mode():
                model(xb)


def cases(model, x, target, args) -> dict[str, dict[str, Callable[[], object]]]:
    from captum.attr import (
        GuidedBackprop,
        GuidedGradCam,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    n, size = len(x), x.shape[-1]
    norm = model.normalization
    p, s, steps, samples = args.patch, args.stride, args.ig_steps, args.samples
    windows = len(window_starts(size, p, s)) ** 2
    gray, black = norm.constant(x, 0.5), norm.constant(x, 0.0)
    sg_std = args.sigma / min(norm.std)  # Captum's stdevs are in input units

    def loop(fn):
        return lambda: [fn(x[i:i + 1], target[i:i + 1]) for i in range(n)]

    def softmax_model(inp):
        return model(inp).softmax(dim=1)

    def captum_grad_cam():
        cam = LayerGradCam(model, model.layer4).attribute(x, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, (size, size), interpolate_mode="bilinear")

    fwd_bwd = lambda k: lambda: passes(model, x, k * n, n, True)  # noqa: E731
    return {
        "saliency": {
            "ours": lambda: te.saliency(model, x, target),
            "captum": lambda: Saliency(model).attribute(x, target=target, abs=True),
            "loop": loop(lambda xi, ti: te.saliency(model, xi, ti)),
            "bare": fwd_bwd(1),
        },
        "grad_cam": {
            "ours": lambda: te.grad_cam(model, x, "layer4", target),
            "captum": captum_grad_cam,
            "loop": loop(lambda xi, ti: te.grad_cam(model, xi, "layer4", ti)),
            "bare": fwd_bwd(1),
        },
        "guided_backprop": {
            "ours": lambda: te.guided_backprop(model, x, target),
            "captum": lambda: GuidedBackprop(model).attribute(x, target=target),
            "loop": loop(lambda xi, ti: te.guided_backprop(model, xi, ti)),
            "bare": fwd_bwd(1),
        },
        "guided_grad_cam": {
            "ours": lambda: te.guided_grad_cam(model, x, "layer4", target),
            "captum": lambda: GuidedGradCam(model, model.layer4).attribute(x, target=target),
            "loop": loop(lambda xi, ti: te.guided_grad_cam(model, xi, "layer4", ti)),
            "bare": fwd_bwd(2),
        },
        f"occlusion {p}/{s} ({windows} win)": {
            "ours": lambda: te.occlusion(model, x, target, patch=p, stride=s),
            "captum": lambda: Occlusion(softmax_model).attribute(
                x, target=target, sliding_window_shapes=(3, p, p), strides=(3, s, s),
                baselines=gray),
            "loop": loop(lambda xi, ti: te.occlusion(model, xi, ti, patch=p, stride=s)),
            "bare": lambda: passes(model, x, n * (windows + 1), 32, False),
        },
        f"integrated_gradients ({steps} st)": {
            "ours": lambda: te.integrated_gradients(model, x, target, steps=steps),
            "captum": lambda: IntegratedGradients(model).attribute(
                x, baselines=black, target=target, n_steps=steps),
            "loop": loop(lambda xi, ti: te.integrated_gradients(model, xi, ti, steps=steps)),
            "bare": lambda: (passes(model, x, n, n, False),
                             passes(model, x, n * steps, 64, True)),
        },
        f"smoothgrad saliency ({samples})": {
            "ours": lambda: te.smoothgrad(te.saliency, model, x, target=target,
                                          n_samples=samples, sigma=args.sigma),
            "captum": lambda: NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=samples, stdevs=sg_std, target=target,
                abs=True),
            "loop": loop(lambda xi, ti: te.smoothgrad(te.saliency, model, xi, target=ti,
                                                      n_samples=samples, sigma=args.sigma)),
            "bare": lambda: (passes(model, x, n, n, False),
                             passes(model, x, n * samples, 64, True)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="images explained at once")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--ig-steps", type=int, default=20, help="Integrated Gradients steps")
    parser.add_argument("--patch", type=int, default=8, help="occlusion window side")
    parser.add_argument("--stride", type=int, default=4, help="occlusion stride")
    parser.add_argument("--samples", type=int, default=8, help="SmoothGrad noisy samples")
    parser.add_argument("--sigma", type=float, default=0.15, help="SmoothGrad sigma (pixels)")
    parser.add_argument("--only", default="", help="run methods whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # Captum's hook notices, the untrained-model warning

    torch.manual_seed(0)
    model = resnet18_cifar(weights=None).eval()
    x = model.normalization.normalize(torch.rand(args.batch, 3, args.size, args.size))
    target = torch.arange(args.batch) % 10
    te.saliency(model, x, target)  # warm-up

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x "
          f"3x{args.size}x{args.size}, ResNet-18-CIFAR, median of {args.repeats} (seconds)")
    header = (f"{'method':<34}{'ours':>8}{'captum':>8}{'loop':>8}{'bare':>8}"
              f"{'captum/ours':>12}{'loop/ours':>10}{'ours/bare':>10}")
    print(header)
    print("-" * len(header))
    for name, fns in cases(model, x, target, args).items():
        if args.only not in name:
            continue
        t = median_times(fns, args.repeats)
        print(f"{name:<34}{t['ours']:8.3f}{t['captum']:8.3f}{t['loop']:8.3f}{t['bare']:8.3f}"
              f"{t['captum'] / t['ours']:12.2f}{t['loop'] / t['ours']:10.2f}"
              f"{t['ours'] / t['bare']:10.2f}", flush=True)
    print("captum = Captum 0.9 with its default batching (Occlusion: perturbations_per_eval=1; "
          "IG and NoiseTunnel: all points in one batch); loop = our function called once per "
          "image; bare = the forward(+backward) passes the method needs, nothing else.")


if __name__ == "__main__":
    main()
