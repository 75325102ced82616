"""A pytest plugin for the nbval run of `make test`: seconds per notebook, against the budget.

nbval reports one test item per cell; this adds up the setup, call and teardown time of every
cell of a notebook (the kernel's start falls in its first cell) and prints one line per notebook
at the end of the run, marking any over the quick-scale budget of DESIGN.md (60 s on 2 cores).
It reports and does not fail: a machine busy with other work runs slower, and a flaky red suite
teaches nothing. `make nbval` copies it as conftest.py beside the copied notebooks.
"""

from __future__ import annotations

import os
from collections import defaultdict

BUDGET_S = float(os.environ.get("PAPERNOTES_NOTEBOOK_BUDGET_S", "60"))

_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    if report.nodeid.split("::")[0].endswith(".ipynb"):
        _seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    tr = terminalreporter
    tr.section("seconds per notebook")
    for name, s in sorted(_seconds.items()):
        flag = f"  OVER the {BUDGET_S:.0f} s budget" if s > BUDGET_S else ""
        tr.write_line(f"{name:30s} {s:6.1f} s{flag}")
    tr.write_line(f"{'all notebooks':30s} {sum(_seconds.values()):6.1f} s")
