"""Classification summaries and map statistics of helpers.metrics (numpy only)."""

import numpy as np
import pytest

from helpers.core import maps, stats


def test_confusion_matrix_per_class_accuracy_and_most_confused():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = np.array([0, 1, 1, 1, 2, 2, 0, 1, 1])
    cm = stats.confusion_matrix(labels, preds, 4)
    assert cm.shape == (4, 4) and cm.sum() == len(labels)
    np.testing.assert_array_equal(cm[:3, :3], [[1, 2, 0], [0, 1, 1], [1, 2, 1]])
    acc = stats.per_class_accuracy(cm)
    np.testing.assert_allclose(acc[:3], [1 / 3, 1 / 2, 1 / 4])
    assert np.isnan(acc[3])  # no images of class 3
    # off-diagonal cells by count, ties in (true, predicted) order; the diagonal never appears
    assert stats.most_confused(cm, 3) == [(0, 1, 2), (2, 1, 2), (1, 2, 1)]
    assert stats.most_confused(np.eye(3, dtype=int) * 5) == []


def test_select_examples_takes_confident_right_then_confident_wrong():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 0, 1])
    # right: 0 (0.9), 4 (0.7), 1 (0.6); wrong: 2 (0.8), 3 (0.55)
    assert stats.select_examples(probs, labels, 4).tolist() == [0, 4, 2, 3]
    assert stats.select_examples(probs, labels, 3, n_wrong=1).tolist() == [0, 4, 2]


def test_center_mass_fraction():
    uniform = np.ones((1, 40, 40))
    assert maps.center_mass_fraction(uniform)[0] == pytest.approx(0.25)
    centre = np.zeros((1, 40, 40))
    centre[0, 18:22, 18:22] = 1.0
    corner = np.zeros((1, 40, 40))
    corner[0, :3, :3] = 1.0
    got = maps.center_mass_fraction(np.concatenate([centre, corner, np.zeros((1, 40, 40))]))
    assert got[0] == 1.0 and got[1] == 0.0 and np.isnan(got[2])
    negative = -np.ones((1, 40, 40))
    negative[0, 0, 0] = 1.0  # negative values do not count as mass
    assert maps.center_mass_fraction(negative)[0] == 0.0


def test_mass_area():
    assert maps.mass_area(np.ones((1, 10, 10)))[0] == pytest.approx(0.5)
    spike = np.zeros((1, 10, 10))
    spike[0, 3, 4] = 2.0
    assert maps.mass_area(spike)[0] == pytest.approx(0.01)
    two = np.zeros((1, 10, 10))
    two[0, 0, 0], two[0, 5, 5] = 3.0, 1.0  # the largest pixel alone holds 75 %
    assert maps.mass_area(two, 0.5)[0] == pytest.approx(0.01)
    assert maps.mass_area(two, 0.9)[0] == pytest.approx(0.02)
    assert np.isnan(maps.mass_area(np.zeros((1, 4, 4)))[0])


def test_paired_difference_and_its_standard_error():
    a = np.array([1, 1, 1, 0, 1, 0, 1, 1], bool)
    b = np.array([1, 0, 1, 0, 0, 0, 1, 1], bool)
    diff, se = stats.paired_difference(a, b)
    d = a.astype(float) - b
    assert diff == pytest.approx(0.25)
    assert se == pytest.approx(np.std(d, ddof=1) / np.sqrt(8))
    assert stats.paired_difference(a, a) == (0.0, 0.0)
    with pytest.raises(ValueError):
        stats.paired_difference(a, b[:-1])


def test_stratified_sample_spreads_classes_and_respects_the_mask():
    labels = np.repeat(np.arange(10), 20)
    mask = np.ones(200, bool)
    mask[labels == 3] = False  # class 3 never eligible
    mask[np.flatnonzero(labels == 4)[1:]] = False  # class 4 has a single eligible item
    idx = stats.stratified_sample(labels, 32, mask, seed=1)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(set(idx.tolist())) == 32 and mask[idx].all()
    assert counts[3] == 0 and counts[4] == 1
    assert set(counts[[0, 1, 2, 5, 6, 7, 8, 9]]) <= {3, 4}  # 31 over the other 8 classes
    assert np.array_equal(idx, stats.stratified_sample(labels, 32, mask, seed=1))
    assert len(stats.stratified_sample(labels, None, mask)) == mask.sum()
    with pytest.raises(ValueError, match="eligible"):
        stats.stratified_sample(labels, 500, mask)
