"""Matplotlib figures shared by both tracks (framework-neutral: they take numpy arrays).

Lessons: every notebook (first used in ``00_entorno_y_datos.ipynb``).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.core.maps import as_heatmaps
from helpers.core.spanish import pct


def to_display(image) -> np.ndarray:
    """An image as HxWxC (or HxW) float array in [0, 1], from uint8 or float, HWC or CHW."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return np.clip(arr.squeeze(), 0.0, 1.0)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8,
               title: str | None = None, size: float = 1.6, cmap: str | None = None):
    """Show images in a grid with one title each (long titles wrapped, never cut); returns the
    figure."""
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{n} images but {len(titles)} titles")
    if titles is not None:
        titles = [wrap_title(t, max(10, round(size * 10))) for t in titles]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    title_lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles else 0
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(size * ncols, (size + 0.15 + 0.17 * title_lines) * nrows
                                      + (0.4 if title else 0)))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_display(images[i]), cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def wrap_title(text: str, width: int) -> str:
    """``text`` with each of its lines wrapped at ``width`` characters (words are not cut)."""
    return "\n".join(textwrap.fill(line, width, break_long_words=False) or line
                     for line in str(text).split("\n"))


def confusion_matrix_figure(cm: np.ndarray, classes: Sequence[str], title: str,
                            xlabel: str = "clase predicha", ylabel: str = "clase real"):
    """A confusion matrix with its counts written in the cells."""
    fig, ax = plt.subplots(figsize=(0.55 * len(classes) + 2.5, 0.55 * len(classes) + 2),
                           layout="constrained")
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    threshold = cm.max() / 2 if cm.size else 0
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                color="white" if value > threshold else "black")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="imágenes")
    return fig


def grouped_bars(values: dict[str, Sequence[float]], labels: Sequence[str], title: str,
                 ylabel: str, ylim: tuple[float, float] | None = (0, 1)):
    """Bars of several series (one colour each) over the same labels."""
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(labels)), 3.5), layout="constrained")
    width = 0.8 / max(1, len(values))
    for k, (name, series) in enumerate(values.items()):
        ax.bar(np.arange(len(labels)) + (k - (len(values) - 1) / 2) * width, series, width,
               label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set(title=title, ylabel=ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return fig


def history_figure(history: dict[str, Sequence[float]], title: str):
    """Training loss and validation accuracy per epoch (``TrainResult.history``)."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    left.plot(epochs, history["loss"], "o-")
    left.set(xlabel="época", ylabel="pérdida (entrenamiento)", title="Pérdida")
    right.plot(epochs, history["val_accuracy"], "o-", color="tab:green")
    right.set(xlabel="época", ylabel="exactitud (validación)", title="Exactitud", ylim=(0, 1))
    for ax in (left, right):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def scale_map(m: np.ndarray, signed: bool = False, percentile: float = 99.0) -> np.ndarray | None:
    """A map scaled for display: to [0, 1] (or [-1, 1] if ``signed``), clipped at a percentile.

    Returns None for an all-zero (or non-finite) map instead of dividing by zero.
    """
    m = np.asarray(m, dtype=np.float32)
    top = np.percentile(np.abs(m), percentile) if m.size else 0.0
    if not np.isfinite(top) or top <= 0:
        top = float(np.abs(m).max()) if m.size and np.isfinite(m).all() else 0.0
    if top <= 0:
        return None
    return np.clip(m / top, -1.0 if signed else 0.0, 1.0)


def maps_grid(images: Sequence, maps: dict[str, Sequence], row_titles: Sequence[str] | None = None,
              title: str | None = None, overlay: Sequence[str] = ("Grad-CAM",), size: float = 1.9,
              cmap: str = "inferno", signed: Sequence[str] = (), shared: bool = True):
    """One row per image: the image, then one column per method's map, with a colorbar.

    Maps are [H,W] or channel attributions [C,H,W] (summed over channels: as ``|a|``, or with
    their sign for methods named in ``signed``, drawn in a diverging colormap centred at 0).
    ``shared=True``: each method's maps share one scale (the 99th percentile of its absolute
    values over all rows), so the rows of a column compare; ``False`` scales each map on its own.
    Methods in ``overlay`` are drawn over the image. An all-zero map is labelled as such.
    """
    n, names = len(images), list(maps)
    fig, axes = plt.subplots(n, 1 + len(names), figsize=(size * (1 + len(names)), size * n + 0.9),
                             squeeze=False, layout="constrained")
    for i in range(n):
        axes[i, 0].imshow(to_display(images[i]))
        axes[i, 0].set_ylabel(wrap_title(row_titles[i], 20) if row_titles else "", fontsize=8)
    for j, name in enumerate(names, start=1):
        column = [_heatmap(maps[name][i], name in signed) for i in range(n)]
        top = _shared_top(column) if shared else None
        mappable = None
        for i, m in enumerate(column):
            mappable = _draw_map(axes[i, j], to_display(images[i]), m, top, name in signed,
                                 name in overlay, cmap) or mappable
        axes[0, j].set_title(name, fontsize=9)
        if mappable is not None:
            label = ("escala común" if shared else "escala por mapa") + (
                ", con signo" if name in signed else "")
            bar = fig.colorbar(mappable, ax=axes[:, j], location="bottom", shrink=0.9, pad=0.01)
            bar.set_label(label, fontsize=7)
            bar.ax.tick_params(labelsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("imagen", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def _heatmap(m, signed: bool) -> np.ndarray:
    """[H,W] from [H,W] or [C,H,W]: summed over channels, as |a| unless ``signed``."""
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 3:
        m = m.sum(axis=0) if signed else as_heatmaps(m[None])[0]
    return m


def _shared_top(column: Sequence[np.ndarray]) -> float:
    """The 99th percentile of |values| over a column of maps (0 if they are all zero)."""
    values = np.abs(np.concatenate([np.ravel(m) for m in column]))
    values = values[np.isfinite(values)]
    top = float(np.percentile(values, 99.0)) if values.size else 0.0
    return top if top > 0 else float(values.max(initial=0.0))


def _draw_map(ax, image: np.ndarray, m: np.ndarray, top: float | None, signed: bool,
              overlay: bool, cmap: str):
    """Draw one map scaled by ``top`` (or by itself when None); return the image artist."""
    scaled = scale_map(m, signed=signed) if top is None else (
        np.clip(m / top, -1.0 if signed else 0.0, 1.0) if top > 0 and np.abs(m).max() > 0
        else None)
    if scaled is None:
        ax.imshow(image, alpha=0.3)
        ax.text(0.5, 0.5, "mapa nulo\n(todo ceros)", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="red")
        return None
    lo, colors = (-1.0, "RdBu_r") if signed else (0.0, cmap)
    if overlay:
        ax.imshow(image)
    return ax.imshow(scaled, cmap=colors, vmin=lo, vmax=1.0, alpha=0.5 if overlay else 1.0)


def gradient_image(g, spread: float = 0.15) -> np.ndarray:
    """A signed [C,H,W] attribution as an RGB image: 0.5 gray is zero, brighter/darker is +/-."""
    g = np.asarray(g, dtype=np.float32)
    std = g.std()
    if not np.isfinite(std) or std == 0:
        return np.full((*g.shape[1:], g.shape[0]), 0.5, dtype=np.float32)
    return np.clip(0.5 + spread * (g - g.mean()) / std, 0, 1).transpose(1, 2, 0)


def curves_figure(histories: dict[str, dict[str, Sequence[float]]], title: str,
                  best_epochs: dict[str, int] | None = None,
                  stage_starts: dict[str, int] | None = None):
    """Loss and accuracy per epoch of several runs (Keras ``History.history`` dicts).

    One colour and marker per run; validation solid, training thin and faint; a large dot marks
    each run's kept epoch (``best_epochs``, 1-based). Runs drawn first get wider lines, so a run
    whose curve coincides with a later one (the first stage of a fine-tuning) stays visible.
    ``stage_starts``: the first epoch of a run's second stage, drawn as a dotted vertical line.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    markers, n = "osD^vPX*", len(histories)
    for k, (name, h) in enumerate(histories.items()):
        color, epochs = f"C{k}", np.arange(1, len(h["loss"]) + 1)
        width = 1.0 + 3.0 * (n - 1 - k) / max(n - 1, 1)
        for ax, key in ((left, "loss"), (right, "accuracy")):
            ax.plot(epochs, h[key], "-", color=color, alpha=0.3, lw=0.8)
            ax.plot(epochs, h[f"val_{key}"], "-", color=color, lw=width, alpha=0.85,
                    marker=markers[k % len(markers)], markersize=3, label=name)
            if best_epochs and name in best_epochs:
                b = best_epochs[name]
                ax.plot([b], [h[f"val_{key}"][b - 1]], "o", color=color, markersize=8,
                        markeredgecolor="black")
            if stage_starts and name in stage_starts:
                ax.axvline(stage_starts[name] - 0.5, color=color, ls=":", lw=1.2)
    left.set(xlabel="época", ylabel="entropía cruzada", title="Pérdida")
    right.set(xlabel="época", ylabel="exactitud", title="Exactitud", ylim=(0, 1))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    stages = "; punteada vertical: empieza la 2.ª etapa" if stage_starts else ""
    fig.suptitle(f"{title}\n(gruesa: validación; fina y tenue: entrenamiento; punto grande: época "
                 f"conservada{stages})", fontsize=10)
    return fig


def robustness_figure(rows: Sequence[dict], perturbations: dict, title: str,
                      ylabel: str = "exactitud"):
    """Accuracy against severity, one panel per perturbation, one line per model.

    ``rows`` as returned by :func:`helpers.keras.perturb.robustness`; ``perturbations`` maps
    each name to an object with ``title`` and ``unit`` (e.g.
    :data:`helpers.keras.perturb.PERTURBATIONS`).
    Severity 0 is the clean accuracy.
    """
    models = list(dict.fromkeys(r["model"] for r in rows))
    clean = {r["model"]: r["accuracy"] for r in rows if r["perturbation"] == "none"}
    names = [p for p in perturbations if any(r["perturbation"] == p for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(3.1 * len(names), 3.6), squeeze=False,
                             layout="constrained",
                             sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        for k, model in enumerate(models):
            pts = sorted((r["severity"], r["accuracy"]) for r in rows
                         if r["model"] == model and r["perturbation"] == name)
            xs, ys = [0.0] + [s for s, _ in pts], [clean[model]] + [a for _, a in pts]
            ax.plot(xs, ys, "o-", color=f"C{k}", label=model, markersize=4)
        ax.set(title=perturbations[name].title, xlabel=perturbations[name].unit, ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def per_class_figure(values: Sequence[float], labels: Sequence[str], title: str,
                     n_worst: int = 10, xlabel: str = "exactitud de la clase"):
    """Per-class scores: their histogram (left) and the ``n_worst`` classes by name (right)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")[:n_worst]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.2]})
    # bins centred on 0, 0.1, ..., 1: per-class accuracies are often k/10 and must not fall
    # on a bin edge (0.30000000000000004) and land in the wrong bar
    left.hist(values[np.isfinite(values)], bins=np.linspace(-0.05, 1.05, 12), color="tab:blue",
              edgecolor="white")
    left.set(xlabel=xlabel, ylabel="número de clases", title="Distribución")
    right.barh(np.arange(len(order)), values[order], color="tab:red")
    for row, v in enumerate(values[order]):
        right.text(v + 0.01, row, pct(v, 0), va="center", fontsize=8)
    right.set_yticks(range(len(order)), [labels[i] for i in order], fontsize=8)
    right.invert_yaxis()
    right.set(xlabel=xlabel, xlim=(0, 1), title=f"Las {len(order)} peores clases")
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="x" if ax is right else "y")
    fig.suptitle(title)
    return fig
