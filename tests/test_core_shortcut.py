"""The planted shortcut and the known-answer scores: mass inside the cue and the pointing game."""

import numpy as np
import pytest

from helpers.core.maps import mass_inside, pointing_game
from helpers.core.shortcut import Shortcut, cue_masks, plant, plant_training_cue, random_corners


def test_plant_draws_the_square_on_a_copy_only_where_asked():
    images = np.full((3, 8, 8, 3), 7, np.uint8)
    spec = Shortcut(target=0, size=2, color=(1, 2, 3))
    corners = np.array([[0, 0], [6, 6], [3, 4]])
    out = plant(images, corners, spec, rows=np.array([True, True, False]))
    assert (images == 7).all()  # input untouched
    np.testing.assert_array_equal(out[0, :2, :2], np.broadcast_to([1, 2, 3], (2, 2, 3)))
    np.testing.assert_array_equal(out[1, 6:, 6:], np.broadcast_to([1, 2, 3], (2, 2, 3)))
    assert (out[2] == 7).all() and (out[0, 2:] == 7).all()
    masks = cue_masks(corners, 8, 8, 2)
    assert masks.sum((1, 2)).tolist() == [4, 4, 4] and masks[1, 7, 7] and not masks[1, 5, 5]


def test_bad_images_corners_and_specs_are_rejected():
    spec = Shortcut(target=0)
    with pytest.raises(ValueError, match="uint8 images"):
        plant(np.zeros((2, 8, 8, 3)), np.zeros((2, 2), int), spec)
    with pytest.raises(ValueError, match="one corner per image"):
        plant(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 2), int), spec)
    with pytest.raises(ValueError, match="does not fit"):
        random_corners(2, 3, 3, 4, np.random.default_rng(0))
    for bad in ({"p_target": 1.5}, {"p_other": -0.1}, {"size": 0}, {"color": (0, 0, 300)}):
        with pytest.raises(ValueError):
            Shortcut(target=0, **bad)


def test_training_cue_follows_its_shares_and_seed():
    labels = np.arange(20000) % 10
    images = np.zeros((len(labels), 6, 6, 3), np.uint8)
    spec = Shortcut(target=3, p_target=0.8, p_other=0.05, size=2)
    planted, has_cue, corners = plant_training_cue(images, labels, spec)
    assert has_cue[labels == 3].mean() == pytest.approx(0.8, abs=0.03)
    assert has_cue[labels != 3].mean() == pytest.approx(0.05, abs=0.01)
    drawn = (planted == 255).any(-1).any((1, 2))
    np.testing.assert_array_equal(drawn, has_cue)
    assert ((corners >= 0) & (corners <= 4)).all()
    again = plant_training_cue(images, labels, spec)
    np.testing.assert_array_equal(again[0], planted)


def test_mass_inside_known_maps():
    masks = cue_masks(np.array([[1, 1], [0, 0], [2, 2]]), 4, 4, 2)
    maps = np.stack([masks[0] * 3.0, np.ones((4, 4)), np.zeros((4, 4))])
    maps[0] *= -1  # signed maps count by magnitude
    got = mass_inside(maps, masks)
    np.testing.assert_allclose(got[:2], [1.0, 4 / 16])
    assert np.isnan(got[2])
    with pytest.raises(ValueError, match="same shape"):
        mass_inside(maps, masks[:2])


def test_pointing_game_with_and_without_tolerance():
    masks = cue_masks(np.array([[0, 0]] * 3), 5, 5, 2)
    maps = np.zeros((3, 5, 5))
    maps[0, 1, 1] = 1.0  # inside
    maps[1, 2, 2] = -5.0  # one pixel off, by magnitude
    np.testing.assert_array_equal(pointing_game(maps, masks), [True, False, False])
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=1), [True, True, False])
