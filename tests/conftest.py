"""Suite-wide settings: whether this run selects the slow tests (`-m slow`, `-m "slow or not slow"`), read by
helpers that scale a test's work to the run (tests/variants/harness.py compiles variant modules for the cpu target
only then)."""
from __future__ import annotations

import os


def _selects_slow(expr: str) -> bool:
    if not expr:
        return True                     # no -m at all (pyproject's addopts always passes one)
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(expr).evaluate(lambda name, **kw: name == "slow"))
    except Exception:  # noqa: BLE001 - a pytest without this internal API: read the expression plainly
        flat = expr.replace(" ", "")
        return "slow" in flat and "notslow" not in flat


def pytest_configure(config) -> None:
    os.environ["ATTNCC_TESTS_SLOW"] = "1" if _selects_slow(config.getoption("markexpr") or "") else "0"
