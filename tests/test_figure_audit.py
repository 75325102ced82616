"""tools/figure_audit.py: the check every notebook figure passes as run_notebooks.py draws it.

The hook cell is executed here as the kernel would execute it (with a stand-in for IPython's
``get_ipython``); figures are then drawn through ``savefig`` (the same ``print_figure`` the
inline backend calls) and the problems it records are compared with what each figure lacks.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("figure_audit", ROOT / "tools" / "figure_audit.py")
fa = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fa)


@pytest.fixture
def audit():
    """Install the hook; yield a function that draws a figure and returns its new problems."""
    original = FigureCanvasBase.print_figure
    # IPython has counted the running cell already: cell [7] runs with execution_count 8
    shell = types.SimpleNamespace(execution_count=8)
    exec(fa.HOOK_CELL, {"get_ipython": lambda: shell})
    state = sys.modules["_papernotes_figures"]

    def draw(fig, dpi=90):
        before = len(state.problems)
        fig.savefig(io.BytesIO(), format="png", dpi=dpi)
        plt.close(fig)
        return state.problems[before:]

    yield draw
    FigureCanvasBase.print_figure = original
    del sys.modules["_papernotes_figures"]


def good_figure(width=6.0):
    fig, ax = plt.subplots(figsize=(width, 3))
    ax.plot([0, 1], [1, 0])
    ax.set(title="loss", xlabel="epoch", ylabel="loss (nats)")
    return fig


def test_a_complete_figure_passes(audit):
    assert audit(good_figure()) == []


def test_missing_labels_and_title_are_named(audit):
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], [1, 0])
    problems = audit(fig)
    assert "cell [7]: no title: give the figure a suptitle or every panel a title" in problems
    assert "cell [7]: panel 1: no x label" in problems and "cell [7]: panel 1: no y label" in problems


def test_suptitle_and_shared_labels_are_enough(audit):
    fig, axes = plt.subplots(1, 2, figsize=(7, 3), sharey=True)
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("step")
    axes[0].set_ylabel("return")          # the right panel shares it
    fig.suptitle("two runs")
    assert audit(fig) == []


def test_a_twin_axis_shares_its_hosts_title(audit):
    fig = good_figure()
    twin = fig.axes[0].twinx()
    twin.step([0, 1], [1, 0.5])
    twin.set_ylabel("step size")
    assert audit(fig) == []
    fig = good_figure()
    other = fig.add_axes((0.7, 0.6, 0.2, 0.2))     # an inset is a panel of its own
    other.plot([0, 1], [0, 1])
    other.set(xlabel="a", ylabel="b")
    assert "cell [7]: no title: give the figure a suptitle or every panel a title" in audit(fig)


def test_image_grid_with_axes_off_needs_only_a_title(audit):
    fig, axes = plt.subplots(2, 2, figsize=(4, 4))
    for ax in axes.flat:
        ax.imshow([[0, 1], [1, 0]])
        ax.axis("off")
    assert audit(fig) == ["cell [7]: no title: give the figure a suptitle or every panel a title"]
    fig, axes = plt.subplots(2, 2, figsize=(4, 4))
    for ax in axes.flat:
        ax.imshow([[0, 1], [1, 0]])
        ax.axis("off")
    fig.suptitle("samples")
    assert audit(fig) == []


def test_text_too_small_on_the_page(audit):
    """A 16-inch figure at 90 dpi is shown at 676/1440 of its size: 10-point text becomes
    10 * 90/72 * 0.469 = 5.9 px, under the 7.5 px floor; at 6 inches it is 12.5 px."""
    problems = audit(good_figure(width=16))
    assert len(problems) == 1 and "would be 5.9 px tall on the page" in problems[0]
    assert audit(good_figure(width=6)) == []


def test_each_figure_is_checked_once(audit):
    fig = good_figure()
    fig.savefig(io.BytesIO(), format="png")
    fig.axes[0].set_xlabel("")
    assert audit(fig) == []               # already checked when first drawn
    assert sys.modules["_papernotes_figures"].checked == 1
