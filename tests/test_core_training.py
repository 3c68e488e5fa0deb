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


def test_an_epoch_far_past_its_estimate_is_announced_once_in_spanish():
    import threading
    import time

    from helpers.core.training import EpochWatch

    said = []
    watch = EpochWatch(0.02, "la red de prueba", said.append, factor=2, min_seconds=0.1)
    assert watch.limit == pytest.approx(0.12)  # max(2 x 0.02, 0.02 + 0.1)
    threads = threading.active_count()
    with watch.epoch(1, 3):
        pass  # on time: nothing said
    with watch.epoch(2, 3):
        time.sleep(0.4)
    assert len(said) == 1
    assert "época 2/3 de la red de prueba" in said[0] and "bloqueado" in said[0]
    assert "reinícialo" in said[0] and "XAI_PROFILE=fast" in said[0]
    with pytest.raises(KeyboardInterrupt), watch.epoch(3, 3):
        raise KeyboardInterrupt  # an interrupted epoch leaves no timer behind
    time.sleep(0.3)
    assert len(said) == 1 and threading.active_count() == threads
