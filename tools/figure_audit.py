"""Figures for people: every figure a notebook shows is checked as it is drawn.

`tools/run_notebooks.py` runs :data:`HOOK_CELL` first in the kernel (an injected cell, removed
again before the notebook is written, like the freshness cells). It wraps matplotlib's
``FigureCanvasBase.print_figure``, through which the inline backend renders every figure a cell
shows (``plt.show()``, ``display(fig)``, or the figure left open at the end of a cell), and
checks the figure first (:func:`figure_problems`, defined in the kernel by the same cell):

* **a title**: the figure has a ``suptitle``, or every panel that shows something has a title;
* **labelled axes**: a panel that draws its axes has an x label and a y label, on itself or on
  a panel it shares that axis with (``sharex``/``sharey``); an axis with no ticks needs none;
  image panels with their axes off (a grid of samples) need none;
* **readable text**: every piece of text (titles, labels, tick labels, legends, annotations),
  at the size it will have on the page, is at least :data:`MIN_TEXT_PX` pixels tall. The page
  shows a figure at its own pixel size, shrunk to the column (:data:`COLUMN_PX`, the code box
  at a 1280-pixel window) when wider; so a 12-inch figure at 90 dpi (1,080 px) is shown at
  63 %, and its 10-point labels at 7.8 px.

Units in axis labels, and whether a plot's colours read on the dark theme, are left to the
reader and to ``tools/browser_check.py`` (which checks that every figure has an opaque
background). The problems are printed by the collect cell (:data:`COLLECT_CELL`) after
:data:`REPORT_MARKER`; ``run_notebooks.py`` stores them in the notebook's metadata
(``papernotes.figures``: ``{"checked": n, "problems": [...]}``), prints them and exits non-zero
when there are any; ``tests/test_notebooks_meta.py`` requires every notebook's record to be
there and empty of problems.
"""

from __future__ import annotations

import json

#: The metadata key of the injected cells (``tools/freshness.py`` removes every cell that has it).
INJECTED_VALUE = "figures"

#: The width of a cell's output box at a 1280-pixel window (tools/browser_check.py measures it).
COLUMN_PX = 676

#: The smallest text, in CSS pixels as shown on the page, that we call readable.
MIN_TEXT_PX = 7.5

REPORT_MARKER = "__papernotes_figures__ "

HOOK_CELL = r'''
def _papernotes_figures_install(column_px, min_text_px):
    import sys, types
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    state = types.ModuleType("_papernotes_figures")
    state.problems = []
    state.checked = 0
    sys.modules["_papernotes_figures"] = state
    ip = get_ipython()

    def shown_scale(fig, dpi):
        width_px = fig.get_figwidth() * dpi
        return min(1.0, column_px / width_px) * dpi / 72.0   # page pixels per point

    def has_content(ax):
        return bool(ax.lines or ax.collections or ax.patches or ax.images or ax.texts
                    or ax.tables or ax.artists)

    def label_somewhere(ax, which):
        axes = [ax] + list((ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes())
                           .get_siblings(ax))
        return any((a.get_xlabel() if which == "x" else a.get_ylabel()).strip() for a in axes)

    def figure_problems(fig, dpi):
        out = []
        panels = [ax for ax in fig.axes if ax.get_visible() and has_content(ax)
                  and not hasattr(ax, "_colorbar")]
        suptitle = fig._suptitle is not None and fig._suptitle.get_text().strip()
        # a twin axes (ax.twinx()) sits on its host's box and shares its title
        hosts = [ax for i, ax in enumerate(panels) if not any(
            o.get_position().bounds == ax.get_position().bounds for o in panels[:i])]
        if not suptitle and any(not ax.get_title().strip() and not ax.get_title("left").strip()
                                and not ax.get_title("right").strip() for ax in hosts):
            out.append("no title: give the figure a suptitle or every panel a title")
        for i, ax in enumerate(panels):
            if not ax.axison:
                continue                      # an image panel with its axes off
            name = f"panel {i + 1}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
            for which, ticks in (("x", ax.get_xticks()), ("y", ax.get_yticks())):
                axis = ax.xaxis if which == "x" else ax.yaxis
                if len(ticks) and axis.get_visible() and not label_somewhere(ax, which):
                    out.append(f"{name}: no {which} label")
        scale = shown_scale(fig, dpi)
        renderer = fig.canvas.get_renderer()
        smallest, where = None, None
        for text in fig.findobj(matplotlib.text.Text):
            if not text.get_visible() or not text.get_text().strip():
                continue
            try:
                if text.get_window_extent(renderer).width <= 0:
                    continue
            except Exception:
                continue
            px = text.get_fontsize() * scale
            if smallest is None or px < smallest:
                smallest, where = px, text.get_text()
        if smallest is not None and smallest < min_text_px:
            out.append(f"text {where!r} would be {smallest:.1f} px tall on the page "
                       f"(figure {fig.get_figwidth():.1f} in wide at {dpi:g} dpi, column "
                       f"{column_px} px): at least {min_text_px} px")
        return out

    original = FigureCanvasBase.print_figure

    def print_figure(self, *args, **kwargs):
        fig = self.figure
        if not getattr(fig, "_papernotes_checked", False):
            fig._papernotes_checked = True
            state.checked += 1
            dpi = kwargs.get("dpi") or fig.dpi
            if dpi == "figure":
                dpi = fig.dpi
            try:
                found = figure_problems(fig, float(dpi))
            except Exception as exc:            # never break the notebook over the audit
                found = [f"could not be checked: {exc!r}"]
            for p in found:
                # while a cell runs, IPython's count is already the next cell's
                state.problems.append(f"cell [{ip.execution_count - 1}]: {p}")
        return original(self, *args, **kwargs)

    FigureCanvasBase.print_figure = print_figure
    state.figure_problems = figure_problems

_papernotes_figures_install(COLUMN_PX, MIN_TEXT_PX)
del _papernotes_figures_install
'''.replace("COLUMN_PX", repr(COLUMN_PX)).replace("MIN_TEXT_PX", repr(MIN_TEXT_PX))

COLLECT_CELL = r'''
import sys as _sys, json as _json
print(MARKER + _json.dumps({"checked": _sys.modules["_papernotes_figures"].checked,
                            "problems": _sys.modules["_papernotes_figures"].problems}))
del _sys, _json
'''.replace("MARKER", repr(REPORT_MARKER))


def inject(nb, key: str) -> None:
    """Add the hook cell first and the collect cell last (``key``: the injected-cell metadata
    key, whose cells ``tools/freshness.py`` removes)."""
    import nbformat

    nb.cells = [nbformat.v4.new_code_cell(HOOK_CELL.strip(), metadata={key: INJECTED_VALUE}),
                *nb.cells,
                nbformat.v4.new_code_cell(COLLECT_CELL.strip(), metadata={key: INJECTED_VALUE + "-collect"})]


def report(nb, key: str) -> dict:
    """``{"checked": <figures shown>, "problems": [...]}`` as the collect cell printed it (call
    before the injected cells are removed)."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get(key) == INJECTED_VALUE + "-collect":
            for o in cell.get("outputs", []):
                for line in o.get("text", "").splitlines():
                    if line.startswith(REPORT_MARKER):
                        return json.loads(line[len(REPORT_MARKER):])
    raise RuntimeError("the figure audit's collect cell printed no report")
