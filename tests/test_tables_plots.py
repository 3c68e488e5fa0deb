"""Markdown tables and the Keras-track figures: content, labels, titles."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import plots
from helpers.tables import markdown_table


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_markdown_table_formats_and_aligns():
    rows = [{"name": "a", "acc": 0.5, "t": 1.234, "note": None},
            {"name": "b", "acc": 0.25, "t": 10.0, "note": "x"}]
    text = markdown_table(rows, {"name": "modelo", "acc": "exactitud", "t": "s", "note": "nota"},
                          {"acc": ".1%", "t": lambda v: f"{v:.0f} s"})
    lines = text.splitlines()
    assert lines[0] == "| modelo | exactitud | s | nota |"
    assert lines[1] == "|:---|---:|---:|:---|"
    assert lines[2] == "| a | 50.0% | 1 s |  |" and lines[3] == "| b | 25.0% | 10 s | x |"


def test_curves_figure_has_both_panels_labelled():
    hist = {"loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 1.5, 1.6],
            "accuracy": [0.3, 0.6, 0.9], "val_accuracy": [0.3, 0.5, 0.45]}
    fig = plots.curves_figure({"a": hist, "b": hist}, "curvas", best_epochs={"a": 2},
                              stage_starts={"b": 3})
    left, right = fig.axes
    assert left.get_xlabel() == right.get_xlabel() == "época"
    assert left.get_ylabel() and right.get_ylabel() and "curvas" in fig._suptitle.get_text()
    assert len(left.lines) == 2 * 2 + 1 + 1  # train + val per run, a best-epoch dot, a stage line
    dot = left.lines[2]
    assert dot.get_xdata()[0] == 2 and dot.get_ydata()[0] == 1.5
    val_a, val_b = left.lines[1], left.lines[4]
    assert val_a.get_linewidth() > val_b.get_linewidth()  # identical curves: "a" stays visible
    assert left.lines[5].get_xdata()[0] == 2.5  # the second stage starts at epoch 3
    assert "2.ª etapa" in fig._suptitle.get_text()


def test_robustness_figure_one_panel_per_perturbation():
    class P:
        def __init__(self, title):
            self.title, self.unit = title, "unidad"

    rows = [{"model": m, "perturbation": p, "severity": s, "accuracy": acc}
            for m, base in (("m1", 0.8), ("m2", 0.6))
            for p, s, acc in (("none", 0.0, base), ("noise", 1.0, base - 0.1),
                              ("noise", 2.0, base - 0.3), ("blur", 1.0, base - 0.2))]
    fig = plots.robustness_figure(rows, {"noise": P("ruido"), "blur": P("desenfoque")}, "rob")
    assert [ax.get_title() for ax in fig.axes] == ["ruido", "desenfoque"]
    assert all(ax.get_xlabel() == "unidad" for ax in fig.axes) and fig.axes[0].get_ylabel()
    line = fig.axes[0].lines[0]  # m1 on noise: clean point first
    np.testing.assert_allclose(line.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(line.get_ydata(), [0.8, 0.7, 0.5])


def test_per_class_figure_names_the_worst_classes():
    values = np.array([0.9, 0.1, 0.5, 0.3, 1.0])
    fig = plots.per_class_figure(values, list("abcde"), "por clase", n_worst=2)
    hist, worst = fig.axes
    assert [t.get_text() for t in worst.get_yticklabels()] == ["b", "d"]
    assert hist.get_xlabel() and hist.get_ylabel() and worst.get_xlabel()
    assert sum(p.get_height() for p in hist.patches) == len(values)


def test_history_figure_plots_the_shared_train_result_history():
    history = {"loss": [2.0, 1.5, 1.2], "val_accuracy": [0.3, 0.5, 0.45]}
    fig = plots.history_figure(history, "historia")
    left, right = fig.axes
    np.testing.assert_array_equal(left.lines[0].get_ydata(), history["loss"])
    np.testing.assert_array_equal(right.lines[0].get_ydata(), history["val_accuracy"])
    assert list(right.lines[0].get_xdata()) == [1, 2, 3]
    plt.close(fig)


def test_maps_grid_shares_one_scale_per_method_with_colorbars_and_signed_maps():
    from helpers.plots import maps_grid

    images = np.zeros((2, 4, 4, 3), np.uint8)
    weak, strong = np.ones((4, 4)), 10 * np.ones((4, 4))
    signed = np.stack([-np.ones((3, 4, 4)), np.ones((3, 4, 4))])
    fig = maps_grid(images, {"a": [weak, strong], "IG": signed, "nulo": np.zeros((2, 4, 4))},
                    ["x", "y"], title="t", signed=("IG",))
    axes = np.array(fig.axes[:8]).reshape(2, 4)
    shown = [axes[i, 1].images[-1].get_array() for i in range(2)]
    assert shown[0].max() == pytest.approx(0.1) and shown[1].max() == pytest.approx(1.0)
    ig = axes[0, 2].images[-1]
    assert ig.get_cmap().name == "RdBu_r" and ig.get_clim() == (-1.0, 1.0)
    assert ig.get_array().min() == pytest.approx(-1.0)  # the sign is kept
    assert "mapa nulo" in axes[0, 3].texts[0].get_text()
    colorbars = fig.axes[8:]
    assert len(colorbars) == 2 and "escala común" in colorbars[0].get_xlabel()
    alone = maps_grid(images, {"a": [weak, strong]}, shared=False)
    assert alone.axes[1].images[-1].get_array().max() == pytest.approx(1.0)  # each on its own
    plt.close("all")


def test_image_grid_wraps_long_titles_instead_of_cutting_them():
    from helpers.plots import image_grid

    names = ["giant white arum lily", "love in the mist"]
    fig = image_grid(np.zeros((2, 4, 4, 3), np.uint8), names, title="t", size=1.0)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].replace("\n", " ") == "giant white arum lily" and "\n" in titles[0]
    plt.close("all")
