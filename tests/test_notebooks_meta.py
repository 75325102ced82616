"""Checks of the notebooks as files: structure the book relies on (outputs are proven by nbval)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


def test_colab_links_follow_the_repository_url():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks.py"), "--check", *map(str, NOTEBOOKS)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    text = ["".join(c["source"]) for c in cells]
    assert cells[0]["cell_type"] == "markdown" and "colab.research.google.com" in text[0]
    assert "google.colab" in text[1], "second cell installs the package in Colab only"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) and "SCALE" in "".join(c["source"]) for c in cells)
    assert sum(t.count("{exercise}") for t in text) >= 3 and sum(t.count("{solution}") for t in text) >= 3
    every = "\n".join(text)
    for kind in ("Derivation", "Code", "Experiment"):   # one of each, as DESIGN.md asks
        assert f"{{exercise}} {kind}" in every, f"{path.name}: no {kind.lower()} exercise"
    solutions = every.split("{solution}")[1:]
    assert all(":class: dropdown" in s.split("```")[0] for s in solutions), \
        f"{path.name}: every solution sits behind a toggle (:class: dropdown)"
    assert any("Full scale" in t for t in text)
    for c in cells:
        if c["cell_type"] == "code":
            assert c.get("execution_count") is not None, f"{path.name}: a code cell was never executed"
            for o in c.get("outputs", []):
                assert o["output_type"] != "error", f"{path.name}: an error output is committed"


#: The widest line that fits a code box of the rendered page without a horizontal scrollbar
#: (a 1280-pixel window, _static/papernotes.css); tools/browser_check.py measures the pages.
WIDTH = 79

FENCE = re.compile(r"\s*(`{3,}|~{3,}|:{3,})(.*)$")


def too_wide(nb: dict) -> list[str]:
    """Every line over WIDTH characters: in code cells, in what they print (stream text and
    text/plain), and in fenced code inside markdown (the exercises' solutions). Markdown prose
    and directive bodies wrap, and are not counted."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            lines = [("code", line) for line in source.splitlines()]
            for o in cell.get("outputs", []):
                text = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                lines += [("output", line) for line in text.splitlines()]
        else:
            lines, stack = [], []          # open fences: (marker, holds code)
            for line in source.splitlines():
                m = FENCE.match(line)
                if m:
                    marker, rest = m.group(1), m.group(2).strip()
                    if stack and not rest and marker == stack[-1][0]:
                        stack.pop()
                    elif rest or not stack:
                        stack.append((marker, not rest.startswith("{")))
                elif stack and stack[-1][1]:
                    lines.append(("markdown code", line))
        out += [f"cell {i} {kind} ({len(line)} characters): {line}" for kind, line in lines
                if len(line) > WIDTH]
    return out


def test_too_wide_finds_each_kind():
    nb = {"cells": [
        {"cell_type": "code", "source": ["x = 1\n", "y" * 80],
         "outputs": [{"output_type": "stream", "text": ["ok\n", "z" * 81]}]},
        {"cell_type": "markdown", "source": ["prose " * 30 + "\n", "````{solution} a\n", "text " * 30,
                                             "\n~~~python\n", "w" * 82 + "\n", "~~~\n", "````\n"]},
    ]}
    assert [p.split(":")[0] for p in too_wide(nb)] == [
        "cell 0 code (80 characters)", "cell 0 output (81 characters)",
        "cell 1 markdown code (82 characters)"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_lines_fit_the_page(path):
    """Readable without scrolling sideways (issue 19): code, printed output and solution code
    at most 79 characters a line."""
    problems = too_wide(json.loads(path.read_text()))
    assert not problems, f"{path.name}: lines wider than {WIDTH} characters:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_figures_were_checked(path):
    """Figures for people (issue 19): tools/run_notebooks.py checked every figure the notebook
    drew (title, axis labels, text size on the page: tools/figure_audit.py) and recorded what
    it found; the committed outputs have no problems."""
    meta = json.loads(path.read_text())["metadata"].get("papernotes", {})
    record = meta.get("figures")
    assert record is not None, (f"{path.name}: no figure record; re-execute it: "
                                f"make notebooks NOTEBOOKS=notebooks/{path.name}")
    assert record["checked"] >= 1, f"{path.name}: no figure was drawn"
    assert record["problems"] == [], f"{path.name}: " + "\n".join(record["problems"])
