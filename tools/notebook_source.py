"""Notebooks written as Python: the cells of a notebook as ``md(...)`` / ``code(...)`` calls in a
generator script (``tools/make_<slug>_notebook.py``), so they can be reviewed as code.

``NotebookSource(path)`` collects the cells; ``write()`` checks that no code line passes 79
characters (the page is read, not scrolled) and writes the notebook with empty outputs;
``make notebooks NOTEBOOKS=<path>`` then executes it.
"""

from __future__ import annotations

import json
from pathlib import Path


class NotebookSource:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.cells: list[tuple[str, str, list[str]]] = []

    def md(self, text: str) -> None:
        self.cells.append(("markdown", text.strip("\n"), []))

    def code(self, text: str, *tags: str) -> None:
        self.cells.append(("code", text.strip("\n"), list(tags)))

    def build(self) -> dict:
        cells = []
        for kind, text, tags in self.cells:
            cell = {"cell_type": kind, "id": f"cell-{len(cells):02d}",
                    "metadata": ({"tags": tags} if tags else {}),
                    "source": text.splitlines(keepends=True)}
            if kind == "code":
                cell.update(execution_count=None, outputs=[])
            cells.append(cell)
        meta = {"accelerator": "GPU", "colab": {"provenance": []},
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python", "version": "3.11"}}
        return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}

    def long_lines(self) -> list[str]:
        return [f"cell {i}: {line!r}" for i, (kind, text, _) in enumerate(self.cells) if kind == "code"
                for line in text.splitlines() if len(line) > 79]

    def write(self) -> None:
        bad = self.long_lines()
        if bad:
            raise SystemExit("code lines over 79 characters:\n" + "\n".join(bad))
        self.path.write_text(json.dumps(self.build(), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {self.path} ({len(self.cells)} cells)")
