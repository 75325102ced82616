"""Checks of the notebooks as files: structure the book relies on (outputs are proven by nbval)."""

import json
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
