"""Ships the committed results inside the package; everything else is in pyproject.toml.

``build_py`` copies the repository's top-level ``results/`` folder (every file, every
subfolder, at build time) to ``papernotes_core/_results/`` in the build, so a wheel carries
them and :func:`papernotes_core.runtime.results_dir` finds them after ``pip install .``.
``results/`` itself stays where it is: the book and the tools read it there. An editable
install skips the copy (the checkout's ``results/`` is used). ``MANIFEST.in`` grafts
``results`` so that an sdist, and a wheel built from it, carry the files too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET = ("papernotes_core", "_results")


def _skipped(name: str) -> bool:
    """Hidden files and folders (``.ipynb_checkpoints``, a results writer's ``.x.json.*.tmp``)
    and ``__pycache__`` are not results."""
    return name.startswith(".") or name == "__pycache__"


def results_files() -> list[Path]:
    """Every file under ``results/``, relative to it, sorted."""
    if not RESULTS.is_dir():
        return []
    found = []
    for folder, dirs, files in os.walk(RESULTS):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        found += [Path(folder, f).relative_to(RESULTS) for f in sorted(files) if not _skipped(f)]
    return found


class build_py(_build_py):
    """``build_py`` that also copies ``results/`` to ``<build_lib>/papernotes_core/_results/``."""

    def _results_targets(self) -> list[tuple[Path, Path]]:
        if getattr(self, "editable_mode", False):
            return []
        dest = Path(self.build_lib, *TARGET)
        return [(RESULTS / rel, dest / rel) for rel in results_files()]

    def run(self):
        super().run()
        pairs = self._results_targets()
        if not pairs and not getattr(self, "editable_mode", False):
            self.warn(f"no results/ folder at {RESULTS}: the package will carry no results")
        dest = Path(self.build_lib, *TARGET)
        if dest.exists() and not getattr(self, "editable_mode", False):
            shutil.rmtree(dest)  # a stale build/ must not keep files that results/ no longer has
        for src, dst in pairs:
            self.mkpath(str(dst.parent))
            self.copy_file(str(src), str(dst), preserve_mode=False)

    def get_outputs(self, include_bytecode=1):
        return [*super().get_outputs(include_bytecode), *(str(dst) for _, dst in self._results_targets())]


setup(cmdclass={"build_py": build_py})
