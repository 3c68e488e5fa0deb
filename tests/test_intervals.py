"""The statistics layer: intervals, the verdict rule and its sentences, timings, Spanish numbers."""

import math

import numpy as np
import pytest

from helpers.core import intervals as iv
from helpers.core.spanish import general, interval, num, pct
from helpers.core.timing import time_repeated


def test_bootstrap_of_a_constant_is_the_constant():
    est = iv.bootstrap_mean(np.full(10, 0.3))
    assert (est.value, est.low, est.high, est.n) == pytest.approx((0.3, 0.3, 0.3, 10))


def test_bootstrap_of_two_values_matches_the_exact_resampling_distribution():
    # n = 2 items {0, 1}: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so
    # the 95 % percentile interval is [0, 1] and the 50 % one is [0.5, 0.5] around 0.5.
    est = iv.bootstrap_mean([0.0, 1.0], n_boot=20000)
    assert (est.value, est.low, est.high) == (0.5, 0.0, 1.0)
    narrow = iv.bootstrap_mean([0.0, 1.0], level=0.4, n_boot=20000)
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def test_bootstrap_interval_of_a_mean_matches_the_normal_one_for_many_items():
    x = np.random.default_rng(3).normal(2.0, 1.0, 400)
    est = iv.bootstrap_mean(x, n_boot=4000)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))  # about 0.098
    assert est.value == pytest.approx(x.mean())
    assert est.high - est.low == pytest.approx(2 * half, rel=0.1)


def test_bootstrap_median_ignores_one_extreme_item():
    # resampled medians: P(<= 2) = P(Bin(5, 0.4) >= 3) = 0.317 = P(>= 4), so the 50 % interval
    # is [2, 4] whatever the extreme value
    est = iv.bootstrap_median([1.0, 2.0, 3.0, 4.0, 1000.0], level=0.5, n_boot=20000)
    assert (est.value, est.low, est.high) == (3.0, 2.0, 4.0)
    assert iv.bootstrap_mean([1.0, 2.0, 3.0, 4.0, 1000.0]).value == 202.0


def test_bootstrap_columns_share_resamples_and_are_deterministic():
    x = np.random.default_rng(0).normal(size=(30, 3))
    cols = iv.bootstrap_mean(x, seed=5)
    assert [c.value for c in cols] == pytest.approx(x.mean(0))
    one = iv.bootstrap_mean(x[:, 1], seed=5)
    assert (cols[1].low, cols[1].high) == pytest.approx((one.low, one.high))
    assert iv.bootstrap_mean(x[:, 0], seed=1) == iv.bootstrap_mean(x[:, 0], seed=1)


def test_paired_bootstrap_sees_a_small_consistent_difference():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1.0, 32)  # large spread between items, shared by both methods
    a, b = base + 0.1, base
    assert iv.verdict(iv.bootstrap_paired_difference(a, b)) == 1
    # unpaired, the same difference is lost in the item-to-item spread
    assert iv.bootstrap_mean(a).low < iv.bootstrap_mean(b).high


def test_unpaired_difference_of_two_groups():
    same = iv.bootstrap_difference([1.0] * 5, [0.0] * 9)
    assert (same.value, same.low, same.high, same.n) == (1.0, 1.0, 1.0, 5)
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 300), rng.normal(0.0, 1, 200)
    est = iv.bootstrap_difference(a, b, n_boot=4000)
    half = 1.96 * math.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 200)
    assert est.value == pytest.approx(a.mean() - b.mean())
    assert est.high - est.low == pytest.approx(2 * half, rel=0.1)


def test_paired_accuracy_difference_by_hand():
    # d = [1, 0, 0, -1]: mean 0, sd sqrt(2/3), se sqrt(2/3)/2
    est = iv.paired_accuracy_difference([1, 1, 0, 0], [0, 1, 0, 1])
    se = math.sqrt(2 / 3) / 2
    assert (est.value, est.se) == pytest.approx((0.0, se))
    assert (est.low, est.high) == pytest.approx((-1.959964 * se, 1.959964 * se), rel=1e-5)
    # A right on 3 more images of 10, never worse: d mean 0.3, sd of [1,1,1,0*7] = 0.483
    a, b = [1] * 10, [0, 0, 0] + [1] * 7
    est = iv.paired_accuracy_difference(a, b)
    assert est.value == pytest.approx(0.3)
    assert est.se == pytest.approx(np.std([1, 1, 1] + [0] * 7, ddof=1) / math.sqrt(10))


def test_wilson_interval_by_hand():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38415 = 0.71674, half 0.22391...
    est = iv.proportion_interval(8, 10)
    assert (est.low, est.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    edge = iv.proportion_interval(0, 20)
    assert edge.low == 0.0 and 0.1 < edge.high < 0.2  # never an empty or negative interval
    with pytest.raises(ValueError, match="successes"):
        iv.proportion_interval(11, 10)


def test_seed_summary():
    assert iv.seed_summary([0.7, 0.8, 0.9]) == pytest.approx((0.8, 0.1, 3))
    assert iv.seed_summary([0.5]) == (0.5, 0.0, 1)


@pytest.mark.parametrize("low, high, expected", [(0.01, 0.2, 1), (-0.2, -0.01, -1),
                                                 (-0.01, 0.2, 0), (-0.2, 0.01, 0), (0.0, 0.1, 0)])
def test_verdict_needs_the_whole_interval_on_one_side(low, high, expected):
    assert iv.verdict(iv.Estimate((low + high) / 2, low, high, 32)) == expected


def test_compare_sentence_both_directions_and_metric_direction():
    better = iv.Estimate(0.1, 0.02, 0.18, 32)
    worse = iv.Estimate(-0.1, -0.18, -0.02, 32)
    tie = iv.Estimate(0.1, -0.01, 0.21, 32)
    assert iv.compare_sentence("IG", "saliencia", better).startswith("IG supera a saliencia (")
    assert iv.compare_sentence("IG", "saliencia", worse).startswith("IG queda por debajo de")
    assert iv.compare_sentence("IG", "saliencia", tie).startswith("IG no se distingue de saliencia")
    # lower is better (deletion AUC): a negative difference wins
    assert iv.compare_sentence("IG", "azar", worse, higher_is_better=False).startswith(
        "IG supera a azar")
    assert iv.compare_sentence("IG", "azar", better, higher_is_better=False).startswith(
        "IG queda por debajo de azar")
    text = iv.compare_sentence("A", "B", better, percent=True, digits=1)
    assert "+10,0 % [2,0 %; 18,0 %]" in text and "n = 32" in text and "IC 95 %" in text
    points = iv.compare_sentence("A", "B", better, digits=1, points=True)
    assert "+10,0 [2,0; 18,0] puntos" in points


def test_position_sentence():
    est = iv.Estimate(0.9, 0.85, 0.95, 32)
    assert "está por encima de 0,5" in iv.position_sentence("GB", est, 0.5, "0,5")
    assert "no se distingue de" in iv.position_sentence("GB", est, 0.9, "el original")
    assert "está por debajo de" in iv.position_sentence("GB", est, 0.97, "el original")


@pytest.mark.parametrize("bad", [[1.0], [[1.0, 2.0]], [1.0, np.nan], np.ones((2, 2, 2))])
def test_bad_samples_are_named(bad):
    with pytest.raises(ValueError, match="values"):
        iv.bootstrap_mean(bad)


def test_estimate_must_contain_its_value_and_level_is_checked():
    with pytest.raises(ValueError, match="does not contain"):
        iv.Estimate(1.0, 0.0, 0.5, 3)
    with pytest.raises(ValueError, match="level"):
        iv.bootstrap_mean([1.0, 2.0], level=95)


def test_spanish_numbers():
    assert num(0.1234) == "0,12"
    assert num(-0.004) == "0,00"  # never "-0,00"
    assert num(0.25, 2, signed=True) == "+0,25"
    assert num(1234.5, 1) == "1234,5" and num(12345.678, 1) == "12 345,7"
    assert num(-1234567, 0) == "-1 234 567"
    assert pct(0.749) == "74,9 %" and pct(-0.035, 1, signed=True) == "-3,5 %"
    assert num(float("nan")) == "n/d"
    assert general(0.368786) == "0,368786" and general(1e-05) == "1e-05" and general(7.0) == "7"
    assert interval(iv.Estimate(0.5, 0.25, 0.75, 4)) == "0,50 [0,25; 0,75]"
    assert interval(iv.Estimate(0.035, 0.012, 0.058, 4), 1, signed=True,
                    points=True) == "+3,5 [1,2; 5,8] puntos"


def test_time_repeated_discards_the_warmup_and_takes_the_median():
    ticks = iter([0.0, 1.0, 10.0, 12.0, 20.0, 25.0])  # repeats of 1, 2 and 5 s
    calls = []
    t = time_repeated(lambda: calls.append(1), repeats=3, warmup=2, clock=lambda: next(ticks))
    assert len(calls) == 5 and t.seconds == (1.0, 2.0, 5.0)
    assert (t.median, t.low, t.high, t.repeats) == (2.0, 1.0, 5.0, 3)
    synced = []
    time_repeated(lambda: None, repeats=2, warmup=0, sync=lambda: synced.append(1))
    assert len(synced) == 3  # before timing, and after each repeat
    with pytest.raises(ValueError, match="repeats"):
        time_repeated(lambda: None, repeats=0)
