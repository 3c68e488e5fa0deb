"""Spearman rank correlation and the model-randomization sanity check."""

import numpy as np
import pytest
import torch
from torch import nn

from helpers.core.sanity import cascade_auc, cascade_summary
from helpers.core.similarity import spearman
from helpers.torch.explain import saliency
from helpers.torch.sanity import (
    cascading_randomization,
    randomization_metrics,
    randomization_scores,
    reinitialize,
)


def test_spearman_known_values():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 5.0, 2.0, 0.0]])
    np.testing.assert_allclose(spearman(a, a), [1.0, 1.0])
    np.testing.assert_allclose(spearman(a, a[:, ::-1].copy(), absolute=False)[0], -1.0)
    np.testing.assert_allclose(spearman(a, -a), [1.0, 1.0])  # magnitudes by default
    np.testing.assert_allclose(spearman(a, -a, absolute=False), [-1.0, -1.0])
    # ranks [1,2,3,4] vs [2,1,4,3]: 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/60 = 0.6
    np.testing.assert_allclose(spearman(a[:1], np.array([[2.0, 1.0, 4.0, 3.0]])), [0.6])


def test_spearman_constant_map_is_nan_and_shapes_must_match():
    assert np.isnan(spearman(np.ones((1, 4)), np.arange(4.0)[None]))[0]
    with pytest.raises(ValueError, match="shape"):
        spearman(np.ones((2, 4)), np.ones((2, 5)))


def _small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def test_cascade_leaves_the_model_untouched_and_yields_each_step():
    model = _small_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8)
    steps = list(cascading_randomization(model, ["6", "2", "0"], lambda m, x: m(x), x))
    assert [name for name, _ in steps] == ["original", "6", "2", "0"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert not torch.allclose(steps[0][1], steps[1][1])  # outputs change once fc is random


def test_weight_independent_map_scores_one_and_saliency_does_not():
    model, x = _small_net(), torch.randn(3, 3, 8, 8)
    scores = randomization_scores(model, ["6", "2", "0"], {
        "ignora los pesos": lambda m, x: x.abs().sum(1),
        "saliency": lambda m, x: saliency(m, x, target=0),
    }, x)
    assert all(s == pytest.approx(1.0) for _, s in scores["ignora los pesos"])
    assert scores["saliency"][-1][1] < 0.9


def test_unknown_layer_is_rejected():
    with pytest.raises(ValueError, match=r"unknown layer 'fc'\. Valid names: 0, 1, 2"):
        next(cascading_randomization(_small_net(), ["fc"], lambda m, x: x, torch.zeros(1, 3, 8, 8)))


def test_reinitialize_draws_each_layer_from_its_own_initialization():
    net = nn.Sequential(nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.Linear(64, 10))
    with torch.no_grad():  # "trained" values, so the reset shows
        for p in net.parameters():
            p.fill_(5.0)
        net[1].running_mean.fill_(3.0)
        net[1].running_var.fill_(7.0)
    state = torch.random.get_rng_state()
    reinitialize(net, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    conv, linear = net[0].weight, net[2].weight
    for weight, fan_in in ((conv, 16 * 9), (linear, 64)):  # torch default: U(+-1/sqrt(fan_in))
        bound = fan_in**-0.5
        assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
        assert weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.1)
    assert net[0].bias.abs().max() <= (16 * 9) ** -0.5
    bn = net[1]
    assert torch.equal(bn.weight, torch.ones(32)) and torch.equal(bn.bias, torch.zeros(32))
    assert torch.equal(bn.running_mean, torch.zeros(32))
    assert torch.equal(bn.running_var, torch.ones(32))
    again = nn.Sequential(nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.Linear(64, 10))
    reinitialize(again, seed=1)
    assert torch.equal(again[0].weight, conv)  # same seed, same draw
    reinitialize(again, seed=2)
    assert not torch.equal(again[0].weight, conv)


def test_ssim_metric_keeps_the_return_type_and_one_cascade_serves_both_metrics():
    model, x = _small_net(), torch.randn(3, 3, 8, 8)
    explainers = {
        "ignora los pesos": lambda m, x: x.abs().sum(1),
        "canales": lambda m, x: x * 2,  # [N,C,H,W]: summed as |a| over channels for SSIM
        "saliency": lambda m, x: saliency(m, x, target=0),
    }
    layers = ["6", "2", "0"]
    ssim_scores = randomization_scores(model, layers, explainers, x, metric="ssim")
    assert [layer for layer, _ in ssim_scores["saliency"]] == layers
    assert all(isinstance(s, float) for rows in ssim_scores.values() for _, s in rows)
    assert all(s == pytest.approx(1.0) for _, s in ssim_scores["ignora los pesos"])
    assert all(s == pytest.approx(1.0) for _, s in ssim_scores["canales"])
    assert ssim_scores["saliency"][-1][1] < 0.9
    both = randomization_metrics(model, layers, explainers, x)
    assert both["ssim"] == ssim_scores
    assert both["spearman"] == randomization_scores(model, layers, explainers, x)
    custom = randomization_scores(model, layers, explainers, x,
                                  metric=lambda a, b: np.full(len(a), 0.25))
    assert all(s == 0.25 for rows in custom.values() for _, s in rows)
    with pytest.raises(ValueError, match="metric"):
        randomization_scores(model, layers, explainers, x, metric="pearson")


def test_per_image_scores_average_to_the_mean_scores_and_summarize_with_intervals():
    model, x = _small_net(), torch.randn(5, 3, 8, 8)
    layers = ["6", "2", "0"]
    explainers = {"ignora los pesos": lambda m, x: x.abs().sum(1),
                  "saliency": lambda m, x: saliency(m, x, target=0)}
    mean = randomization_metrics(model, layers, explainers, x, metrics=["spearman"])
    each = randomization_metrics(model, layers, explainers, x, metrics=["spearman"],
                                 per_image=True)["spearman"]
    for method, rows in each.items():
        assert [layer for layer, _ in rows] == layers and rows[0][1].shape == (5,)
        for (_, v), (_, m) in zip(rows, mean["spearman"][method], strict=True):
            assert v.mean() == pytest.approx(m)
    summary = cascade_summary(each, ["6", "0"])
    constant = summary["ignora los pesos"]
    assert (constant["6"].value, constant["auc"].low, constant["auc"].high) == pytest.approx(
        (1.0, 1.0, 1.0))
    assert summary["saliency"]["auc"].value < 1.0 and summary["saliency"]["0"].n == 5
    with pytest.raises(ValueError, match="layer9"):
        cascade_summary(each, ["layer9"])


def test_cascade_auc_by_hand():
    # curves 1 -> 0.5 -> 0 and 1 -> 0 -> 0: trapezoids (0.75 + 0.25) / 2 and (0.5 + 0) / 2
    rows = [("fc", np.array([0.5, 0.0])), ("conv", np.array([0.0, 0.0]))]
    np.testing.assert_allclose(cascade_auc(rows), [0.5, 0.25])
