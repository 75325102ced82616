"""Re-execute notebooks at quick scale and write their outputs in place (`make notebooks`).

Before executing, each notebook's "Open in Colab" link and its Colab setup cell are rewritten
from `repository.url` in `_config.yml`, the one place that names the repository. Execution uses
the kernel of the current environment, from the notebook's folder, with `PAPERNOTES_SCALE=quick`
unless the caller set it; widget state is stored so that progress bars render in the book.

Each executed notebook gets a freshness record in its metadata (`papernotes.freshness`, see
tools/freshness.py): the SHA-256 of every papernotes_core module the kernel imported, every
results, data or package-data file it read, constraints.txt and its own code cells.
`tests/test_notebook_freshness.py` fails when any of them has changed since. Two cells are
injected around the notebook's own to collect this; they are removed before it is written.

    python tools/run_notebooks.py notebooks/elu.ipynb [...]
    python tools/run_notebooks.py --check notebooks/*.ipynb   # only verify the links agree
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figure_audit  # noqa: E402  (tools/figure_audit.py)
import freshness  # noqa: E402  (tools/freshness.py, shared with the test)

ROOT = Path(__file__).resolve().parent.parent


class _Client(NotebookClient):
    """Runs the injected freshness cells without history, so that the notebook's own cells keep
    the execution counts (1, 2, ...) they get without them."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if not freshness.is_injected(cell):
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        before = self.code_cells_executed
        try:
            return await super().async_execute_cell(cell, cell_index, None, store_history=False)
        finally:
            self.code_cells_executed = before


def repository_url() -> str:
    """`repository.url` from _config.yml (a tiny reader: the key sits under `repository:`)."""
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M)
    if not match:
        raise SystemExit("_config.yml has no repository.url")
    return match.group(1).rstrip("/")


def sync_links(nb, url: str, name: str) -> bool:
    """Point the notebook's Colab link and `REPO = ...` at `url`; return whether anything changed."""
    colab = url.replace("https://github.com/", "https://colab.research.google.com/github/")
    changed = False
    for cell in nb.cells:
        src = cell.source
        new = re.sub(r"https://colab\.research\.google\.com/github/\S+?/blob/main/notebooks/[\w-]+\.ipynb",
                     f"{colab}/blob/main/notebooks/{name}", src)
        new = re.sub(r'REPO = "[^"]*"', f'REPO = "{url}"', new)
        if new != src:
            cell.source = new
            changed = True
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only check that the links agree with _config.yml")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    url = repository_url()
    os.environ.setdefault("PAPERNOTES_SCALE", "quick")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    bad, bad_figures = [], []
    # Every notebook is written once the batch has run (or stopped): writing each as it finished
    # would leave the checkout dirty for the next one, whose results would then record a dirty tree.
    executed = []
    try:
        for path in args.notebooks:
            nb = nbformat.read(path, as_version=4)
            if args.check:
                if sync_links(nb, url, path.name):
                    bad.append(str(path))
                continue
            sync_links(nb, url, path.name)
            start = time.perf_counter()
            freshness.inject(nb)
            figure_audit.inject(nb, freshness.INJECTED)
            client = _Client(nb, timeout=args.timeout, kernel_name="python3",
                             resources={"metadata": {"path": str(path.parent)}}, store_widget_state=True)
            client.execute()
            figures = figure_audit.report(nb, freshness.INJECTED)
            report = freshness.remove_injected(nb)
            freshness.set_record(nb, freshness.record(nb, report, root=ROOT, notebook=path))
            nb.metadata.setdefault(freshness.META_KEY, {})["figures"] = figures
            if figures["problems"]:
                bad_figures.append(str(path))
                print(f"{path}: figures a reader could not read:", *figures["problems"], sep="\n  ")
            for cell in nb.cells:  # timing metadata only makes diffs noisy
                cell.get("metadata", {}).pop("execution", None)
            executed.append((path, nb))
            print(f"{path}: executed in {time.perf_counter() - start:.1f} s at scale {os.environ['PAPERNOTES_SCALE']}")
    finally:
        for path, nb in executed:
            nbformat.write(nb, path)
    if bad_figures:
        print("figures without a title, axis labels or readable text (tools/figure_audit.py); "
              "the notebooks were written, fix and re-execute:", *bad_figures, sep="\n  ")
    if bad:
        print("these notebooks' Colab links or REPO lines disagree with repository.url in _config.yml; "
              "run `make notebooks`:", *bad, sep="\n  ")
        return 1
    return 1 if bad_figures else 0


if __name__ == "__main__":
    sys.exit(main())
