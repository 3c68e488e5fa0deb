"""Recorded answers replayed in another kernel give the verdict and the feedback of the original
check, for every form of answer; nothing recorded or a damaged recording gives no points."""

import json

import numpy as np
import pytest
import torch
from test_checks import EQUIVALENT_AND_MISTAKE

from helpers import checks
from helpers.checks import augment, explain, record


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv(checks.STRICT_ENV, raising=False)
    monkeypatch.delenv(record.RECORD_ENV, raising=False)
    monkeypatch.delenv(record.REPLAY_ENV, raising=False)


def recorded_then_replayed(run, folder, monkeypatch, capsys):
    """(verdict, printed) of ``run`` recording into ``folder``, then of the replay."""
    monkeypatch.setenv(record.RECORD_ENV, str(folder))
    first = (bool(run()), capsys.readouterr().out)
    monkeypatch.delenv(record.RECORD_ENV)
    monkeypatch.setenv(record.REPLAY_ENV, str(folder))
    second = (bool(run()), capsys.readouterr().out)
    monkeypatch.delenv(record.REPLAY_ENV)
    return first, second


@pytest.mark.parametrize("name", sorted(EQUIVALENT_AND_MISTAKE))
def test_replay_gives_the_verdict_and_feedback_of_the_recorded_run(name, tmp_path, monkeypatch,
                                                                   capsys):
    right, wrong, _ = EQUIVALENT_AND_MISTAKE[name]
    for run, verdict in ((right, True), (wrong, False)):
        first, second = recorded_then_replayed(run, tmp_path / "answers", monkeypatch, capsys)
        assert first == second and first[0] is verdict, (first, second)


def test_replay_keeps_stubs_errors_missing_returns_and_datasets(tmp_path, monkeypatch, capsys):
    from helpers.keras.pipeline import make_pipeline

    def stub(*args):
        raise NotImplementedError("Escribe aquí tu solución")

    class Odd(Exception):
        pass

    def odd(*args):
        raise Odd("algo")

    cases = [lambda: explain.check_ig_linear("Ejercicio 1", stub),
             lambda: explain.check_ig_linear("Ejercicio 1", odd),
             lambda: explain.check_ig_linear("Ejercicio 1", lambda *a: None),
             lambda: explain.check_ig_linear("Ejercicio 1", 3),
             lambda: augment.check_validation_pipeline(
                 "Ejercicio 2", lambda ds, n, block: make_pipeline(ds, n, training=False)),
             lambda: augment.check_validation_pipeline(
                 "Ejercicio 2", lambda ds, n, block: make_pipeline(ds, n, training=True))]
    runs = [recorded_then_replayed(run, tmp_path, monkeypatch, capsys) for run in cases]
    assert all(first == second for first, second in runs), runs
    assert [first[0] for first, _ in runs] == [False, False, False, False, True, False]
    for ((_, printed), _), said in zip(runs[:4], ("no está implementada", "Odd: algo", "None",
                                             "not callable"), strict=True):
        assert said in printed, printed


def test_a_check_replaced_in_the_students_kernel_leaves_nothing_to_replay(tmp_path, monkeypatch,
                                                                          capsys):
    """The student's kernel rebinds the check: it passes there, but nothing was recorded, so
    the pristine replay finds no answer and fails in Spanish."""
    pristine = explain.check_ig_linear
    monkeypatch.setenv(record.RECORD_ENV, str(tmp_path))
    monkeypatch.setattr(explain, "check_ig_linear", lambda *a: checks.Verdict(True))
    assert explain.check_ig_linear("Ejercicio 1", lambda *a: None)
    monkeypatch.setattr(explain, "check_ig_linear", pristine)  # the other kernel's modules
    monkeypatch.delenv(record.RECORD_ENV)
    monkeypatch.setenv(record.REPLAY_ENV, str(tmp_path))
    assert not explain.check_ig_linear("Ejercicio 1", lambda w, x, b: (x - b) * w)
    assert "no respondió" in capsys.readouterr().out


def test_a_damaged_or_pickled_recording_is_refused_without_running_it(tmp_path, monkeypatch,
                                                                      capsys):
    folder = tmp_path / record.slug("Ejercicio 1")
    folder.mkdir()
    (folder / "answer.json").write_text(json.dumps(
        {"kind": "function", "calls": [{"returned": {"t": "ndarray", "a": "a0"}}]}))
    np.savez(folder / "arrays.npz", a0=np.array([object()], dtype=object))  # needs pickle
    monkeypatch.setenv(record.REPLAY_ENV, str(tmp_path))
    assert not explain.check_ig_linear("Ejercicio 1", lambda w, x, b: (x - b) * w)
    assert "dañada" in capsys.readouterr().out
    (folder / "answer.json").write_text("{not json")
    assert not explain.check_ig_linear("Ejercicio 1", lambda w, x, b: (x - b) * w)
    assert "dañada" in capsys.readouterr().out


def test_encode_keeps_the_form_of_each_answer():
    values = [None, True, 3, 2.5, float("nan"), "texto", np.float32(1.5), np.arange(4),
              torch.tensor([1.0, 2.0], dtype=torch.float16), (1, [2.0, {"k": np.int64(3)}]),
              torch.Size([2, 3]), object()]
    arrays = {}
    data = json.loads(json.dumps([record.encode(v, arrays) for v in values]))
    back = [record.decode(d, arrays) for d in data]
    assert back[:4] == [None, True, 3, 2.5] and np.isnan(back[4]) and back[5] == "texto"
    assert isinstance(back[6], np.float32) and back[6] == 1.5
    assert np.array_equal(back[7], np.arange(4))
    assert isinstance(back[8], torch.Tensor) and back[8].dtype == torch.float32
    assert back[9][0] == 1 and back[9][1][0] == 2.0 and back[9][1][1]["k"] == 3
    assert back[10] == (2, 3)
    assert checks.describe_type(back[11]) == "un objeto de tipo object"
    assert record.slug(" Ejercicio 3 (a) ") == "ejercicio_3_a"


def test_every_check_a_notebook_calls_records_its_answer():
    import re
    from pathlib import Path

    modules = [checks.augment, checks.data, checks.explain, checks.training]
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))
    names = {name for path in notebooks for cell in json.loads(path.read_text())["cells"]
             for name in re.findall(r"^(check_\w+)\(", "".join(cell["source"]), re.M)}
    assert len(names) > 30
    for name in names:
        func = next(getattr(m, name) for m in modules if hasattr(m, name))
        assert getattr(func, "graded", False), name
