"""Grades that student code cannot forge: record a submission's answers, replay them elsewhere.

During autograde the student's kernel runs with ``$XAI_GRADING_RECORD`` set to a directory: every
graded check writes there, in a data-only format (JSON plus an ``.npz`` read without pickle), what
the student's answer returned for each of the check's inputs (or what it raised). A second,
pristine kernel then runs the instructor's notebook with ``$XAI_GRADING_REPLAY`` set to that
directory and no student code at all: each check derives its inputs and expected values from its
own objects and compares them with the recorded answers. Rebinding the checks, ``sys.modules``,
builtins, the raised exception or stdout in the student's kernel changes nothing in the second one.
Used by ``tools/autograde.py``. Lesson: the exercise checks of every notebook, from
``00_entorno_y_datos.ipynb`` on.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RECORD_ENV = "XAI_GRADING_RECORD"
REPLAY_ENV = "XAI_GRADING_REPLAY"
MAX_ITEMS = 10_000  # elements of one list, dict or dataset kept in a recording
MAX_DEPTH = 20


def graded(check: Callable) -> Callable:
    """Decorate a ``check_*(exercise, func_or_answer, ...)``: record or replay its answer.

    A parameter named ``func`` is the student's function (its calls are recorded one by one);
    any other name is a value (recorded once). Without the environment variables nothing changes.
    """
    takes_function = list(inspect.signature(check).parameters)[1] == "func"

    @functools.wraps(check)
    def wrapper(exercise: str, answer: Any, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get(REPLAY_ENV):
            answer = replayed(Path(os.environ[REPLAY_ENV]) / slug(exercise), takes_function)
        elif os.environ.get(RECORD_ENV):
            answer = recording(Path(os.environ[RECORD_ENV]) / slug(exercise), answer,
                               takes_function)
        return check(exercise, answer, *args, **kwargs)

    wrapper.graded = True
    return wrapper


def slug(exercise: str) -> str:
    """``"Ejercicio 1"`` -> ``"ejercicio_1"``: the recording's folder name."""
    return re.sub(r"\W+", "_", exercise.strip().lower(), flags=re.ASCII).strip("_") or "_"


def recording(folder: Path, answer: Any, takes_function: bool) -> Any:
    """Start a fresh recording of one check in ``folder``; return what the check should use."""
    shutil.rmtree(folder, ignore_errors=True)
    if takes_function and callable(answer):
        return _Recorder(folder, answer)
    _save(folder, "value", answer)
    return answer


class _Recorder:
    """Calls the student's function and records each outcome (returned value or exception)."""

    def __init__(self, folder: Path, func: Callable) -> None:
        self.folder, self.func, self.calls = folder, func, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.func(*args, **kwargs)
        except Exception as err:
            self.calls.append({"raised": {"type": type(err).__name__, "message": str(err),
                                          "not_implemented": isinstance(err,
                                                                        NotImplementedError)}})
            self._flush()
            raise
        self.calls.append({"returned": result})
        self._flush()
        return result

    def _flush(self) -> None:
        _save(self.folder, "function", self.calls)


def _save(folder: Path, kind: str, payload: Any) -> None:
    """Write a value (``kind="value"``) or a list of call outcomes to ``folder``, atomically:
    JSON for the structure, one ``.npz`` for the arrays."""
    arrays: dict[str, np.ndarray] = {}
    if kind == "value":
        manifest = {"kind": kind, "value": _encode_safely(payload, arrays)}
    else:
        manifest = {"kind": kind, "calls": [
            c if "raised" in c else {"returned": _encode_safely(c["returned"], arrays)}
            for c in payload]}
    folder.mkdir(parents=True, exist_ok=True)
    for name, write in (("arrays.npz", lambda f: np.savez(f, **arrays)),
                        ("answer.json", lambda f: f.write(json.dumps(manifest).encode()))):
        tmp = folder / f".{name}.tmp"
        with tmp.open("wb") as f:
            write(f)
        tmp.replace(folder / name)


def encode(value: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> dict:
    """``value`` as JSON-ready data, its arrays put in ``arrays``; the kind of each tensor is
    kept (torch, TensorFlow, numpy) so the replayed answer has the form the student returned."""
    def array(kind: str, data: Any) -> dict:
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(data)
        return {"t": kind, "a": key}

    module = type(value).__module__ or ""
    if depth > MAX_DEPTH:
        return _opaque(value)
    if value is None:
        return {"t": "none"}
    if isinstance(value, bool | np.bool_):
        return {"t": "bool", "v": bool(value)}
    if isinstance(value, int | float | str) and type(value) in (int, float, str):
        return {"t": type(value).__name__, "v": value}
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return array("npscalar", value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return array("ndarray", value)
    if module.startswith("torch") and hasattr(value, "detach"):
        data = value.detach().cpu()
        return array("torch", data.float() if data.dtype.is_floating_point
                     and data.element_size() < 4 else data)
    if module.startswith("tensorflow") and hasattr(value, "numpy") and hasattr(value, "dtype"):
        return array("tf", value.numpy())
    if module.startswith("tensorflow") and hasattr(value, "element_spec"):  # tf.data.Dataset
        return {"t": "dataset", "items": [encode(e, arrays, depth + 1)
                                          for e in value.take(MAX_ITEMS)]}
    if isinstance(value, tuple | list) and len(value) <= MAX_ITEMS:
        return {"t": "list" if isinstance(value, list) else "tuple",
                "items": [encode(v, arrays, depth + 1) for v in value]}
    if isinstance(value, dict) and len(value) <= MAX_ITEMS:
        return {"t": "dict", "items": [[encode(k, arrays, depth + 1),
                                        encode(v, arrays, depth + 1)] for k, v in value.items()]}
    return _opaque(value)


def _encode_safely(value: Any, arrays: dict[str, np.ndarray]) -> dict:
    """:func:`encode`, or the value's type name when encoding fails (a broken ``__len__``...)."""
    try:
        return encode(value, arrays)
    except Exception:
        return _opaque(value)


def _opaque(value: Any) -> dict:
    return {"t": "opaque", "type": type(value).__name__}


def decode(data: dict, arrays: Any) -> Any:
    """The value :func:`encode` described, from plain data only (no pickle, no student code)."""
    kind = data["t"]
    if kind == "none":
        return None
    if kind in ("bool", "int", "float", "str"):
        return {"bool": bool, "int": int, "float": float, "str": str}[kind](data["v"])
    if kind in ("list", "tuple"):
        items = [decode(d, arrays) for d in data["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in data["items"]}
    if kind == "dataset":
        return _dataset([decode(d, arrays) for d in data["items"]])
    if kind == "opaque":
        return type(str(data["type"]), (), {})()
    array = np.asarray(arrays[str(data["a"])])
    if kind == "npscalar":
        return array[()]
    if kind == "torch":
        import torch

        return torch.from_numpy(array.copy())
    if kind == "tf":
        import tensorflow as tf

        return tf.constant(array)
    if kind == "ndarray":
        return array
    raise ValueError(f"unknown kind {kind!r} in a recorded answer")


def _hashable(key: Any) -> Any:
    return key if not isinstance(key, list | np.ndarray) else repr(key)


def _dataset(elements: list) -> Any:
    import tensorflow as tf

    if not elements:
        return tf.data.Dataset.from_tensors(0).take(0)
    ds = tf.data.Dataset.from_tensors(elements[0])
    for element in elements[1:]:
        ds = ds.concatenate(tf.data.Dataset.from_tensors(element))
    return ds


class NoAnswer(Exception):
    """Replay found no recorded answer: the student's code never reached this call."""


def replayed(folder: Path, takes_function: bool) -> Any:
    """The recorded answer in ``folder``: a value, or a function replaying the recorded calls
    in order. Nothing recorded: a function that raises :class:`NoAnswer` (None for a value)."""
    if not takes_function and not (folder / "answer.json").exists():
        return None
    try:
        manifest = json.loads((folder / "answer.json").read_text())
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if manifest["kind"] == "value":
            return decode(manifest["value"], arrays)
        calls = [c if "raised" in c else {"returned": decode(c["returned"], arrays)}
                 for c in manifest["calls"]]
    except FileNotFoundError:
        calls = []
    except (ValueError, KeyError, TypeError, OSError) as err:
        return _Replay([], f"la respuesta registrada está dañada ({type(err).__name__})")
    return _Replay(calls)


class _Replay:
    """Stands for the student's function: returns (or raises) the recorded outcomes in order."""

    def __init__(self, calls: list[dict], problem: str = "") -> None:
        self.calls, self.problem = list(calls), problem

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.calls:
            raise NoAnswer(self.problem or "tu código no respondió a esta llamada en la "
                           "corrección (¿se sustituyó la comprobación?)")
        outcome = self.calls.pop(0)
        if "returned" in outcome:
            return outcome["returned"]
        raised = outcome["raised"]
        if raised.get("not_implemented"):
            raise NotImplementedError(str(raised["message"]))
        raise type(str(raised["type"]), (Exception,), {})(str(raised["message"]))
