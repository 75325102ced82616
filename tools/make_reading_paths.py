"""Draw the curriculum's reading paths for the guide page: book/figures/reading_paths.svg for the
HTML pages and reading_paths.pdf, the same drawing, for the PDF of ``make pdf`` (the page names
``figures/reading_paths.*`` and each Sphinx builder takes the format it can use).

One row per path, chapters as boxes in reading order, arrows between them; a white background
so that the figure reads on the light and the dark theme alike. Run it after changing a path:
`python tools/make_reading_paths.py`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "book" / "figures" / "reading_paths.svg"

PATHS = [
    ("Generative models", ["2 VAE", "3 GAN", "4 GRAN"]),
    ("Recurrent networks", ["5 IRNN", "6 uRNN", "7 RNN\ndropout"]),
    ("Efficient networks", ["1 ELU", "8 Few\nmultiplications"]),
    ("Language", ["9 Translation\nmatrix", "10 Bytes\nto spans"]),
    ("Reinforcement learning", ["11 DQN"]),
]
COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]


def draw(out: Path = OUT) -> list[Path]:
    plt.rcParams["svg.hashsalt"] = "papernotes"   # the same file from the same drawing
    fig, ax = plt.subplots(figsize=(9.0, 4.6), facecolor="white")
    ax.set_facecolor("white")
    box_w, box_h, gap, left = 2.2, 0.72, 0.6, 2.7
    for row, ((name, chapters), colour) in enumerate(zip(PATHS, COLOURS)):
        y = len(PATHS) - 1 - row
        ax.text(left - 0.25, y, name, ha="right", va="center", fontsize=10, color="black",
                fontweight="bold")
        for i, chapter in enumerate(chapters):
            x = left + i * (box_w + gap)
            ax.add_patch(FancyBboxPatch((x, y - box_h / 2), box_w, box_h, boxstyle="round,pad=0.05",
                                        facecolor=colour, edgecolor="black", alpha=0.9))
            ax.text(x + box_w / 2, y, chapter, ha="center", va="center", fontsize=9, color="white",
                    fontweight="bold")
            if i:
                ax.annotate("", xy=(x - 0.05, y), xytext=(x - gap + 0.05, y),
                            arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.4})
    ax.set_xlim(0, left + 3 * (box_w + gap))
    ax.set_ylim(-0.6, len(PATHS) - 0.4)
    ax.axis("off")
    ax.set_title("Reading paths: read a row left to right; the numbers are the chapters",
                 fontsize=10, color="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor="white", bbox_inches="tight", metadata={"Date": None})
    pdf = out.with_suffix(".pdf")
    fig.savefig(pdf, facecolor="white", bbox_inches="tight",
                metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return [out, pdf]


if __name__ == "__main__":
    print(draw())
