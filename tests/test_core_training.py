"""The training result both tracks share: the first best epoch is kept."""

import pytest

from helpers.core.training import TrainResult, best_epoch


def test_train_result_keeps_the_first_best_epoch():
    assert best_epoch([0.1, 0.5, 0.5, 0.3]) == 2
    result = TrainResult.from_history({"loss": [3, 2, 1, 1], "val_accuracy": [0.1, 0.5, 0.5, 0.3]},
                                      seconds=1.5)
    assert (result.best_epoch, result.epochs_run, result.val_accuracy) == (2, 4, 0.5)
    assert result.history["loss"] == [3.0, 2.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="no epoch"):
        best_epoch([])
