"""The fuzz campaign's session: the budget and seed in force, and the number of losskit calls
made, printed in the terminal summary (and attached to every failing fuzz test's report).

    LOSSKIT_FUZZ_EXAMPLES=N   hypothesis examples per fuzz test (default 30; see _fuzz.fuzz)
    LOSSKIT_FUZZ_SEED=S       the hypothesis seed (default 0); 'random' draws one, printed here
    LOSSKIT_FUZZ_SHRINK=0     report a failing example without shrinking it (faster)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: _reference

import _fuzz  # noqa: E402


def _line() -> str:
    return (
        f"losskit fuzz: calls fuzzed: {_fuzz.calls_made()} (LOSSKIT_FUZZ_SEED={_fuzz.SEED}, "
        f"LOSSKIT_FUZZ_EXAMPLES={_fuzz.EXAMPLES}, LOSSKIT_FUZZ_SHRINK={int(_fuzz.SHRINK)})"
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ANN001
    if _fuzz.calls_made():
        terminalreporter.write_sep("-", "losskit fuzz")
        terminalreporter.write_line(_line())


def pytest_runtest_makereport(item, call):  # noqa: ANN001
    if call.when == "call" and call.excinfo is not None and "fuzz" in item.nodeid:
        item.add_report_section("call", "reproduce", f"rerun with {_line()}")
