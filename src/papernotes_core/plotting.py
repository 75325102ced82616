"""Figure helpers shared by the notebooks.

* :func:`animation_html`: a Matplotlib animation as self-contained HTML (every frame embedded,
  play/step controls) that works in the static book page, offline.
* :class:`Animated`, made by :func:`js_animation` or :func:`gif_animation`: what a notebook cell
  shows for an animation: the HTML that plays it (the book's pages, Jupyter, Colab) and one still
  frame as PNG for formats that cannot play it (the PDF of ``make pdf``), in one output.
"""

from __future__ import annotations

import base64
import html
import io
import re

_CDN_LINK = re.compile(r"<link[^>]*href=[\"']https?://[^\"']*[\"'][^>]*>\s*", re.IGNORECASE)


def animation_html(anim, *, default_mode: str = "once") -> str:
    """``anim.to_jshtml()`` with every frame embedded, minus its stylesheet link to a CDN.

    Matplotlib's HTML writer links Font Awesome from a CDN for its button icons; an offline
    reader (and the book's browser check) cannot load it, so the link is removed and the book's
    own icon font draws the buttons. ``default_mode`` is ``"once"``, ``"loop"`` or ``"reflect"``.
    """
    if default_mode not in ("once", "loop", "reflect"):
        raise ValueError(f"default_mode must be 'once', 'loop' or 'reflect', got {default_mode!r}")
    if not hasattr(anim, "to_jshtml"):
        raise TypeError(f"expected a matplotlib.animation.Animation, got {type(anim).__name__}")
    return _CDN_LINK.sub("", anim.to_jshtml(default_mode=default_mode))


class Animated:
    """An animation as a notebook output: ``text/html`` that plays it and ``image/png``, one
    still frame, in one MIME bundle. Each front end shows the richest form it can: the book's
    HTML pages, Jupyter and Colab play the HTML; the LaTeX/PDF build, which cannot, prints the
    still."""

    def __init__(self, html_text: str, still_png: bytes, alt: str) -> None:
        if not isinstance(html_text, str) or not html_text.strip():
            raise ValueError("html_text must be a non-empty string of HTML")
        if not isinstance(still_png, (bytes, bytearray)) or not bytes(still_png).startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError("still_png must be the bytes of a PNG image")
        if not isinstance(alt, str) or not alt.strip():
            raise ValueError("alt must describe the animation in words (a non-empty string)")
        self.html, self.still_png, self.alt = html_text, bytes(still_png), alt

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html,
                "image/png": base64.b64encode(self.still_png).decode("ascii"),
                "text/plain": f"[animation: {self.alt}]"}


def js_animation(anim, *, alt: str, default_mode: str = "once", dpi: float | None = None) -> Animated:
    """A Matplotlib animation with play controls (:func:`animation_html`), its still the last
    frame (the figure as the animation leaves it). Closes nothing: close the figure after."""
    page = animation_html(anim, default_mode=default_mode)
    buf = io.BytesIO()
    anim._fig.savefig(buf, format="png", dpi=dpi or anim._fig.dpi)
    return Animated(page, buf.getvalue(), alt)


def gif_animation(gif: bytes, *, alt: str, width: int | None = None) -> Animated:
    """An animated GIF as an ``<img>`` with the data embedded (it plays without JavaScript or
    anything fetched), its still the GIF's first frame."""
    from PIL import Image

    if not isinstance(gif, (bytes, bytearray)) or not bytes(gif).startswith((b"GIF87a", b"GIF89a")):
        raise ValueError("gif must be the bytes of a GIF image")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
        raise ValueError(f"width must be a positive number of pixels or None, got {width!r}")
    with Image.open(io.BytesIO(gif)) as im:
        im.seek(0)
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="PNG")
    size = f' width="{width}"' if width is not None else ""
    data = base64.b64encode(bytes(gif)).decode("ascii")
    page = f'<img src="data:image/gif;base64,{data}"{size} alt="{html.escape(alt)}">'
    return Animated(page, buf.getvalue(), alt)
