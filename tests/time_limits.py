"""pytest plugin: no test can hang the suite. Loaded by pyproject's ``addopts``.

pytest-timeout gives every test the ini ``timeout`` (pyproject); the few slow tests carry
``@pytest.mark.timeout(N)``, N about 3x their time on 2 cores; a notebook cell gets nbval's
``--nbval-cell-timeout`` plus a minute, so nbval's own limit speaks first. On expiry it prints
every thread's stack and ends the run (``timeout_method = "thread"``: a hang in native code never
returns to Python for a signal handler). Its timer needs the GIL, so :mod:`faulthandler`, which
does not, dumps the stacks and exits :data:`BACKSTOP_SECONDS` later: a native hang that holds the
GIL ends too.
"""

from __future__ import annotations

import faulthandler
import os

import pytest

BACKSTOP_SECONDS = 60
# The terminal's stderr, taken at import (``-p`` plugins load before output capture starts, and a
# dump written to a captured stream is lost when the process exits).
STDERR = os.dup(2)


def item_limit(item: pytest.Item) -> float:
    """The seconds ``item`` may run: its ``timeout`` mark, or the ini ``timeout`` (0: none)."""
    mark = item.get_closest_marker("timeout")
    if mark is not None:
        return float(mark.args[0] if mark.args else mark.kwargs["timeout"])
    return float(item.config.getini("timeout") or 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cell = config.getoption("nbval_cell_timeout", None)
    for item in items:
        if cell and item.nodeid.split("::")[0].endswith(".ipynb"):
            item.add_marker(pytest.mark.timeout(float(cell) + 60))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    limit = item_limit(item)
    if limit > 0:
        faulthandler.dump_traceback_later(limit + BACKSTOP_SECONDS, exit=True, file=STDERR)
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()
