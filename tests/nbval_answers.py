"""pytest plugin for the notebooks under nbval: an accepted answer must not be printed above it.

Loaded by pyproject's ``addopts``. The notebooks run with their reference solutions, so when a
graded check cell accepts a value ("✅ Ejercicio n: correcto (0,1234 ...)"), that value is the
expected one; if an earlier output of the same notebook already shows it, the exercise is a
look-up, and the check cell's test fails naming the cell where it appears. Single-digit integers
are not searched (too common to mean anything); function exercises show no value.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ACCEPTED = re.compile(r"✅ (Ejercicio \d+): correcto \((.+)\)\.\s*$", re.M)
NUMBERISH = re.compile(r"^[-(]?\d[\d.,; ()\-e]*\)?$")
SEEN = pytest.StashKey[dict]()


def answer_shown(text: str) -> tuple[str, str] | None:
    """``(exercise, value)`` when ``text`` accepts a value, else None."""
    match = ACCEPTED.search(text)
    if match is None:
        return None
    value = match.group(2).split("; se admite")[0].strip()
    if not NUMBERISH.match(value) or re.fullmatch(r"-?\d", value):
        return None
    return match.group(1), value


def appears_in(value: str, text: str) -> bool:
    """Whether ``value`` appears in ``text`` as a whole number (not inside a longer one)."""
    return re.search(rf"(?<![\d,.]){re.escape(value)}(?![\d]|,\d)", text) is not None


def output_text(outputs: list) -> str:
    parts = []
    for out in outputs or []:
        if "text" in out:
            parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
        for kind in ("text/plain", "text/markdown", "text/html"):
            value = out.get("data", {}).get(kind)
            if value:
                parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if not hasattr(item, "test_outputs") or not hasattr(item, "cell"):
        return result
    seen = item.session.stash.setdefault(SEEN, {}).setdefault(item.parent.nodeid, [])
    text = output_text(item.test_outputs)
    grading = item.cell.get("metadata", {}).get("nbgrader", {})
    shown = answer_shown(text) if grading.get("grade") and not grading.get("solution") else None
    if shown is not None:
        exercise, value = shown
        earlier = [name for name, out in seen if appears_in(value, out)]
        assert not earlier, (f"{exercise}: its answer {value} is already printed above, in "
                             f"{', '.join(earlier)}: the exercise is a look-up")
    seen.append((item.name, text))
    return result


# Notebooks that tests/test_run_all_twice.py executes (twice, in one kernel) instead of nbval
RUN_TWICE = ("03_grad_cam.ipynb", "14_grad_cam_e_integrated_gradients.ipynb")


def pytest_configure(config):
    config.addinivalue_line("markers", "after_notebooks: run after every notebook of the session "
                            "(it needs the checkpoints they leave in the cache)")


def pytest_ignore_collect(collection_path, config):
    """Leave RUN_TWICE out of a directory's collection (a notebook named on the command line
    still runs under nbval)."""
    if collection_path.name not in RUN_TWICE:
        return None
    named = {Path(arg.split("::")[0]).resolve() for arg in config.args}
    return None if collection_path.resolve() in named else True


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)
