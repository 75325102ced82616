"""Figure helpers shared by the notebooks.

* :func:`animation_html`: a Matplotlib animation as self-contained HTML (every frame embedded,
  play/step controls) that works in the static book page, offline.
"""

from __future__ import annotations

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
