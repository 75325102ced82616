#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and fail on anything a reader would see broken.

The built HTML folder (default ``_build/html``) is served on 127.0.0.1 (an ephemeral port,
``http.server`` in a thread) and each page is opened with Debian's Chromium through Selenium.
After the page has loaded, MathJax has finished typesetting (``MathJax.startup.promise``) and its
images and Jupyter widgets have had time to appear, the page FAILS on any of:

* a browser console error (a ``SEVERE`` entry of the browser log: ``console.error``, an uncaught
  exception, a resource that failed to load);
* a request to a host other than 127.0.0.1 (the site must load nothing from a CDN), taken from
  Chrome's network log, which also records requests that failed, and from
  ``performance.getEntriesByType('resource')``;
* a response with an HTTP error status from the local server (a missing font, script, image...);
* an image that did not load (``<img>`` not complete, or complete with ``naturalWidth == 0`` and
  failing ``img.decode()``);
* a formula MathJax did not typeset: ``$$``, ``\\[`` or ``\\(`` in the page's visible text outside
  code (``pre``, ``code``...), a formula glued between two stray ``$`` (inline ``$$...$$``
  read as ``$`` + ``$...$`` + ``$`` when ``myst_dmath_double_inline`` is not in effect), a
  MathJax error node (``mjx-merror``), or MathJax that never started or finished on a page that
  loads it;
* a notebook error shown in the page: a myst-nb traceback output (``.cell_output .output.traceback``),
  a stderr output (``.output.stderr``) containing ``Error`` or ``Traceback``, or any cell output
  containing ``Traceback (most recent call last)``. Cells tagged ``raises-exception`` (which
  myst-nb marks with the class ``tag_raises-exception``) are meant to show an error and are
  skipped;
* a Jupyter widget view (``application/vnd.jupyter.widget-view+json``) that did not render;
* a link that goes nowhere, read from the page's HTML: an internal ``href`` (a page, a download
  such as ``_sources/notebooks/x.ipynb``) whose file is not in the build, a ``#fragment`` that
  no element of its target page has as ``id`` or ``name``, or an "Open in Colab" link
  (``colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>``) whose ``<path>``
  is not a file of the repository;
* the layout, at a 1280 x 800 window and at a phone's 390 x 844 (:data:`VIEWPORTS`): a code
  cell, an output or any other ``pre`` whose text is wider than its box (a reader would scroll
  sideways), a display equation wider than its column, or, at 1280, one that
  ``_static/papernotes.js`` had to scale below 0.9 to fit (it should be split over lines);
  checked on the light and the dark theme (:data:`THEMES`);
* on the dark theme, a figure that is transparent at its corners with no light background of
  its own (its black axes and labels would sit on the dark page).

Then, for the whole site: the search page (``search.html?q=WORD``) must find each chapter's page
for a word from that chapter (:data:`SEARCH_WORDS`), and screenshots of the intro and of one
chapter (and of that chapter on the dark theme and at a phone's width) are saved under
``_build/screenshots/``.

Pages: every ``*.html`` file under the build folder except those in top-level folders whose names
start with an underscore (Sphinx's asset folders ``_static``, ``_sources``, ``_images``,
``_downloads``); ``genindex.html`` and ``search.html`` are checked like any other page. A
redirect stub (``<meta http-equiv="refresh">``, as Jupyter Book writes ``index.html``) is not
opened: only its target's existence is checked, the target being a page of its own.

Usage::

    python tools/browser_check.py [BUILD_DIR] [--timeout S] [--page PAGE ...] [-v]

Prints one line per failed page with its problems, then ``browser check: N pages, M failed``;
exits 1 when a page failed, 2 when the check could not run (no Chromium, no build).

Importable: :class:`BrowserChecker` serves a folder and checks single pages, e.g. from pytest::

    with BrowserChecker(site_dir) as checker:
        result = checker.check("page.html")
        assert result.problems == []
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import json
import posixpath
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUILD_DIR = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOST = "127.0.0.1"

#: Chromium's command line: headless, and none of its own background traffic.
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)

#: URL schemes that never leave the browser.
LOCAL_SCHEMES = {"data", "blob", "about", "javascript", "chrome", "chrome-extension", "devtools"}

#: ``<meta http-equiv="refresh" content="0; url=TARGET">``: Jupyter Book's index.html is such a stub.
REDIRECT_RE = re.compile(
    r"""<meta[^>]*http-equiv=["']?refresh["']?[^>]*content=["']?\s*\d+\s*;\s*url=([^"'>\s]+)""",
    re.IGNORECASE,
)

#: Requests a browser makes by itself and whose absence is no fault of the site.
IGNORED_PATHS = {"/favicon.ico"}


#: A word from each chapter that the site's search must find that chapter's page for.
SEARCH_WORDS = {
    "book/elu.html": "exponential", "book/vae.html": "reparameterisation", "book/gan.html": "Parzen",
    "book/gran.html": "canvas", "book/irnn.html": "identity", "book/urnn.html": "unitary",
    "book/rnn_dropout.html": "perplexity", "book/few_multiplications.html": "ternary",
    "book/translation_matrix.html": "Bible", "book/byte_to_span.html": "segment",
    "book/dqn.html": "Atari",
}

#: The pages photographed for a reader's look at the site (``_build/screenshots/``).
SCREENSHOT_PAGES = ("book/intro.html", "book/byte_to_span.html")

#: Collect the search page's results once Sphinx's search has finished (or the deadline).
JS_SEARCH_RESULTS = r"""
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0] * 1000;
function poll() {
  const box = document.getElementById("search-results");
  const finished = box && box.querySelector("p.search-summary, .search-summary");
  if (finished || Date.now() > deadline) {
    done({finished: !!finished,
          hrefs: Array.from(document.querySelectorAll("#search-results ul.search li a"))
                   .map(a => a.getAttribute("href"))});
  } else {
    setTimeout(poll, 100);
  }
}
poll();
"""


class CheckError(Exception):
    """The check cannot run at all (no browser, no build folder)."""


@dataclass
class PageResult:
    """What the check found on one page."""

    page: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        """True when the page showed no problem."""
        return not self.problems


# --------------------------------------------------------------------------------------------
# Links, read from the HTML

#: ``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>``.
COLAB_RE = re.compile(r"^https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(?P<path>[^?#]+)")


class _LinkParser(html.parser.HTMLParser):
    """Collects ``<a href>`` values and every ``id`` / ``name`` of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.anchors.add(values[key])
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])


class LinkChecker:
    """Checks the links of built pages against the files of the build and of the repository."""

    def __init__(self, root: Path, repo: Path = ROOT) -> None:
        self.root = Path(root).resolve()
        self.repo = Path(repo).resolve()
        self._parsed: dict[str, _LinkParser] = {}

    def _parse(self, rel: str) -> _LinkParser:
        if rel not in self._parsed:
            parser = _LinkParser()
            parser.feed((self.root / rel).read_text(encoding="utf-8", errors="replace"))
            self._parsed[rel] = parser
        return self._parsed[rel]

    def problems(self, page: str) -> list[str]:
        """What is wrong with the links of ``page`` (a path relative to the build folder)."""
        out = []
        parsed = self._parse(page)
        for href in dict.fromkeys(parsed.hrefs):   # each once, in order
            colab = COLAB_RE.match(href)
            if colab:
                if not (self.repo / unquote(colab.group("path"))).is_file():
                    out.append(f"Colab link to a notebook the repository lacks: {href}")
                continue
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue                              # leaves the site: not ours to check here
            target = page if not parts.path else posixpath.normpath(
                posixpath.join(posixpath.dirname(page), unquote(parts.path)))
            if target.startswith("../") or target == "..":
                out.append(f"link leaves the build folder: {href}")
                continue
            path = self.root / target
            if path.is_dir():
                target, path = posixpath.join(target, "index.html"), path / "index.html"
            if not path.is_file():
                out.append(f"link to a missing file: {href}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and path.suffix == ".html" and fragment not in self._parse(target).anchors:
                out.append(f"link to a missing anchor: {href}")
        return out


# --------------------------------------------------------------------------------------------
# The local web server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request, recording responses with an error status."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: the check reports what matters."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Record 4xx/5xx answers (other than for ignored paths such as /favicon.ico)."""
        try:
            status = int(code)
        except (TypeError, ValueError):
            return
        path = urlsplit(self.path).path
        if status >= 400 and path not in IGNORED_PATHS:
            self.server.http_errors.append(f"{status} {self.path}")  # type: ignore[attr-defined]


class SiteServer:
    """Serve ``root`` on 127.0.0.1 at an ephemeral port from a daemon thread."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.http_errors = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="site-server", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return f"http://{HOST}:{self.httpd.server_address[1]}/"

    def take_errors(self) -> list[str]:
        """Return and forget the HTTP error responses recorded so far."""
        errors = self.httpd.http_errors  # type: ignore[attr-defined]
        taken = list(errors)
        del errors[: len(taken)]
        return taken

    def start(self) -> None:
        """Start serving."""
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# What runs in the page

#: Wait (asynchronously) for MathJax's first typesetting, if the page loads MathJax.
#: Resolves to "none" (no MathJax on the page), "ok", "missing" (the page has loaded but MathJax
#: never started: its script failed), "timeout" or "error: ...".
JS_WAIT_MATHJAX = r"""
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0] * 1000;
const loadsMathJax = Array.from(document.scripts).some(
  s => /mathjax/i.test(s.src || "") || s.id === "MathJax-script");
let completeSince = null;
function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    const left = Math.max(deadline - Date.now(), 0);
    Promise.race([
      mj.startup.promise.then(() => "ok"),
      new Promise(resolve => setTimeout(() => resolve("timeout"), left)),
    ]).then(done, e => done("error: " + (e && e.message || e)));
    return;
  }
  if (!loadsMathJax) { done("none"); return; }
  // MathJax is a deferred or async script: it has run before the load event, unless it failed.
  if (document.readyState === "complete") {
    completeSince = completeSince || Date.now();
    if (Date.now() - completeSince > 1000) { done("missing"); return; }
  }
  if (Date.now() > deadline) { done("timeout"); return; }
  setTimeout(poll, 50);
}
poll();
"""

#: Wait until the images have loaded and the widget views have rendered (or the deadline).
#: Widgets are waited for only when RequireJS loaded (else they cannot render at all).
JS_WAIT_SETTLED = r"""
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0] * 1000;
for (const img of document.images) { if (img.loading === "lazy") img.loading = "eager"; }
function widgetsPending() {
  if (!window.requirejs) return 0;
  return Array.from(document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]'))
    .filter(s => !(s.parentElement && s.parentElement.querySelector(".jupyter-widgets"))).length;
}
function poll() {
  const images = Array.from(document.images).filter(i => !i.complete).length;
  const widgets = widgetsPending();
  if ((images === 0 && widgets === 0) || Date.now() > deadline) {
    done({images: images, widgets: widgets});
  } else {
    setTimeout(poll, 50);
  }
}
poll();
"""

#: Inspect the page; resolves to a list of problem strings.
JS_INSPECT = r"""
const done = arguments[arguments.length - 1];
const problems = [];
const short = t => { t = (t || "").replace(/\s+/g, " ").trim(); return t.length > 160 ? t.slice(0, 157) + "..." : t; };

// Images that did not load: not complete, or complete with no size and undecodable.
const imageChecks = Array.from(document.images).map(async img => {
  const src = img.currentSrc || img.src || img.getAttribute("src") || "(no src)";
  if (!img.complete) { problems.push("image did not finish loading: " + src); return; }
  if (img.naturalWidth > 0) return;
  try { await img.decode(); } catch (e) { problems.push("image did not load: " + src); }
});

// Untypeset formulas: TeX delimiters left in the visible text outside code.
const SKIP = "pre, code, kbd, samp, script, style, textarea, mjx-container, .highlight";
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const text = node.nodeValue;
  if (!text || !/\$\$|\\\[|\\\(/.test(text)) continue;
  const el = node.parentElement;
  if (!el || el.closest(SKIP)) continue;
  if (el.checkVisibility && !el.checkVisibility()) continue;
  problems.push("untypeset formula: " + short(text));
}
// `$$a$$` in a sentence parsed as `$` + `$a$` + `$` (myst_dmath_double_inline not in effect)
// leaves a dollar sign glued to each side of a typeset formula.
for (const math of document.querySelectorAll("span.math")) {
  const before = math.previousSibling, after = math.nextSibling;
  if (before && after && before.nodeType === Node.TEXT_NODE && after.nodeType === Node.TEXT_NODE
      && before.nodeValue.endsWith("$") && after.nodeValue.startsWith("$")) {
    problems.push("formula between stray dollar signs ($$...$$ inline not parsed as math): $"
                  + short(math.textContent) + "$");
  }
}
for (const err of document.querySelectorAll("mjx-merror")) {
  problems.push("MathJax error: " + short(err.getAttribute("data-mjx-error") || err.textContent));
}

// Notebook errors, as myst-nb renders them.
for (const out of document.querySelectorAll(".cell_output, .output")) {
  if (out.closest(".tag_raises-exception")) continue;
  const cls = out.classList;
  const text = Array.from(out.querySelectorAll("pre")).map(p => p.textContent).join("\n")
               || out.textContent || "";
  if (cls.contains("traceback")) {
    problems.push("notebook error output: " + short(text.replace(/^-+/, "")));
  } else if (cls.contains("stderr") && /Error|Traceback/.test(text)) {
    problems.push("notebook stderr shows an error: " + short(text));
  } else if (cls.contains("cell_output") && !out.querySelector(".traceback")
             && text.includes("Traceback (most recent call last)")) {
    problems.push("notebook output shows a traceback: " + short(text));
  }
}

// Widget views that did not render.
for (const s of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')) {
  const host = s.parentElement;
  if (!host || !host.querySelector(".jupyter-widgets")) {
    problems.push("widget did not render: " + short(s.textContent));
  } else if (host.querySelector(".jupyter-widgets.widget-error, .jupyter-widgets-error-widget")) {
    problems.push("widget shows an error: " + short(host.textContent));
  }
}

const resources = performance.getEntriesByType("resource").map(e => e.name);
Promise.all(imageChecks).then(() => done({problems: problems, resources: resources}));
"""


#: The window sizes the layout is checked at: a laptop and a phone (CSS pixels).
VIEWPORTS = {"1280x800": (1280, 800), "phone 390x844": (390, 844)}

#: The themes the layout and the figures are checked on (pydata-sphinx-theme's ``data-theme``).
THEMES = ("light", "dark")

#: Switch pydata-sphinx-theme's colour theme as its own button does (``data-theme`` on <html>,
#: remembered in localStorage), and wait two frames for the styles to apply.
JS_SET_THEME = r"""
const done = arguments[arguments.length - 1];
const theme = arguments[0];
try { localStorage.setItem("theme", theme); localStorage.setItem("mode", theme); } catch (e) {}
document.documentElement.dataset.theme = theme;
document.documentElement.dataset.mode = theme;
requestAnimationFrame(() => requestAnimationFrame(() => done(document.documentElement.dataset.theme)));
"""

#: Layout and legibility, at the window's present size and theme; resolves to problem strings.
#: * over-wide boxes: a code cell, an output or any other ``pre``, or a display equation whose
#:   content is wider than the box it sits in (a reader would have to scroll sideways);
#: * figures that cannot be read on the theme: a content image that is transparent at its
#:   corners and has no opaque background of its own would show the page's colour through it
#:   (dark on the dark theme, where black axes and labels vanish).
JS_LAYOUT = r"""
const done = arguments[arguments.length - 1];
const label = arguments[0];      // the window size, e.g. "1280x800"
const figures = arguments[1];    // the theme whose figures to check, or "" for none
const desktop = arguments[2];    // the design width: an equation may not need scaling below 0.9
const problems = [];
function run() {
const article = document.querySelector("article.bd-article, main, body");
const short = (t, n) => { t = (t || "").replace(/\s+/g, " ").trim(); return t.length > n ? t.slice(0, n - 3) + "..." : t; };
function where(el) {
  const cells = Array.from(article.querySelectorAll("div.cell"));
  const cell = el.closest("div.cell");
  const section = el.closest("section[id]");
  return (cell ? "cell " + (cells.indexOf(cell) + 1) + " " : "")
       + (section ? "in #" + section.id : "");
}
const SLACK = 1;   // sub-pixel rounding
for (const pre of article.querySelectorAll("pre")) {
  if (pre.checkVisibility && !pre.checkVisibility()) continue;
  if (pre.scrollWidth <= pre.clientWidth + SLACK) continue;
  const kind = pre.closest(".cell_output, .output") ? "output" : pre.closest(".cell_input, .cell") ? "code cell" : "code block";
  const longest = (pre.textContent || "").split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
  problems.push(`${label}: over-wide ${kind} ${where(pre)}: ${pre.scrollWidth} px of text in a ${pre.clientWidth} px box;`
                + ` longest line (${longest.length} characters): ${short(longest, 70)}`);
}
for (const mjx of article.querySelectorAll('mjx-container[display="true"]')) {
  if (mjx.checkVisibility && !mjx.checkVisibility()) continue;
  const math = mjx.querySelector("mjx-math") || mjx;
  const wide = math.getBoundingClientRect().width, box = mjx.getBoundingClientRect().width;
  const host = mjx.parentElement;
  const room = host ? host.clientWidth : box;
  const mml = mjx.querySelector("mjx-assistive-mml");
  const source = mml ? ": " + short(mml.textContent, 60) : "";
  const scale = mjx.dataset.pnScale ? +mjx.dataset.pnScale : 1;   // set by _static/papernotes.js
  if (wide > Math.min(box, room) + SLACK) {
    problems.push(`${label}: over-wide equation ${where(mjx)}: ${Math.round(wide)} px in a ${Math.round(Math.min(box, room))} px box`
                  + (scale < 1 ? ` even scaled to ${scale}` : "") + source);
  } else if (desktop && scale < 0.9) {
    problems.push(`${label}: equation ${where(mjx)} fits only scaled to ${scale}: split it over lines${source}`);
  }
}
// Figures on this theme.
const checks = !figures ? [] : Array.from(article.querySelectorAll("img")).map(async img => {
  if (img.checkVisibility && !img.checkVisibility()) return;
  if (!img.complete || img.naturalWidth === 0) return;   // reported by the image check
  let transparent = false;
  try {
    const w = img.naturalWidth, h = img.naturalHeight;
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, w, h);
    for (const [x, y] of [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]]) {
      if (ctx.getImageData(x, y, 1, 1).data[3] < 250) { transparent = true; break; }
    }
  } catch (e) { return; }   // a cross-origin image cannot be read; none of ours is
  if (!transparent) return;
  // transparent: something behind it must be opaque and light (the image's own background)
  const bg = getComputedStyle(img).backgroundColor;
  const m = bg.match(/rgba?\(([\d.]+), ([\d.]+), ([\d.]+)(?:, ([\d.]+))?\)/);
  const opaqueLight = m && (m[4] === undefined || +m[4] > 0.95) && (+m[1] + +m[2] + +m[3]) / 3 > 200;
  if (!opaqueLight) {
    problems.push(`${figures} theme: figure ${where(img)} is transparent with no light background of its own `
                  + `(its text would sit on the page's colour): ${short(img.getAttribute("src"), 60)}`);
  }
});
Promise.all(checks).then(() => done(problems));
}
// measure after the layout of a new window size or theme has settled
requestAnimationFrame(() => requestAnimationFrame(run));
"""


# --------------------------------------------------------------------------------------------
# The browser


def require_browser(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> None:
    """Raise :class:`CheckError` naming the install script when Chromium or its driver is missing."""
    missing = [str(p) for p in (chromium, chromedriver) if not p.is_file()]
    if missing:
        raise CheckError(
            f"{' and '.join(missing)} not found: the browser check needs Debian's headless Chromium.\n"
            "Install it with `bash tools/install_system.sh` (as root: apt-get install chromium chromium-driver)."
        )
    try:
        import selenium  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the venv has it
        raise CheckError("the Python package selenium is not installed in this environment") from exc


def start_browser(profile_dir: str, chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER):
    """Start headless Chromium through chromedriver with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.set_capability("pageLoadStrategy", "normal")
    service = Service(executable_path=str(chromedriver))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as exc:  # selenium raises several types here; all mean "no browser"
        raise CheckError(f"could not start {chromium} via {chromedriver}: {exc}") from exc
    driver.set_window_size(1280, 1024)
    return driver


def _external(url: str) -> bool:
    """True when ``url`` would leave the machine (any host other than 127.0.0.1)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES or not parts.scheme:
        return False
    return parts.hostname != HOST


class BrowserChecker:
    """Serve a built site and check its pages one at a time in one headless Chromium.

    Use as a context manager; :meth:`check` returns a :class:`PageResult` for a page given by its
    path relative to the site folder.
    """

    def __init__(self, root: Path, timeout: float = 20.0,
                 chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise CheckError(f"{self.root} is not a folder: build the book first (jupyter-book build .)")
        self.timeout = float(timeout)
        self.chromium = Path(chromium)
        self.chromedriver = Path(chromedriver)
        self.links = LinkChecker(self.root)
        self.server: SiteServer | None = None
        self.driver = None
        self._profile: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "BrowserChecker":
        require_browser(self.chromium, self.chromedriver)
        self._profile = tempfile.TemporaryDirectory(prefix="browser-check-profile-")
        self.server = SiteServer(self.root)
        self.server.start()
        try:
            self.driver = start_browser(self._profile.name, self.chromium, self.chromedriver)
            self.driver.set_page_load_timeout(self.timeout)
            self.driver.set_script_timeout(self.timeout + 5)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Quit the browser, stop the server and remove the temporary profile."""
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def _drain_logs(self) -> tuple[list[dict], list[dict]]:
        """Return (and clear) the browser console log and the performance (network) log."""
        return self.driver.get_log("browser"), self.driver.get_log("performance")

    def _check_redirect(self, page: str, result: PageResult) -> bool:
        """If ``page`` is a meta-refresh stub, check only that its target exists; True if it is one.

        Loading a stub would race its redirect; the target is checked as a page of its own.
        """
        path = self.root / page
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            return False
        match = REDIRECT_RE.search(head)
        if not match:
            return False
        target = match.group(1).split("#", 1)[0].split("?", 1)[0]
        result.note = f"redirect to {target}"
        if "://" in target:
            if _external(target):
                result.problems.append(f"redirect leaves the site: {target}")
            return True
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
        if not (self.root / resolved).is_file():
            result.problems.append(f"redirects to a missing page: {target}")
        return True

    def check(self, page: str) -> PageResult:
        """Open ``page`` (a path relative to the site folder) and return what is wrong with it."""
        from selenium.common.exceptions import TimeoutException, WebDriverException

        if self.driver is None or self.server is None:
            raise RuntimeError("BrowserChecker.check() called outside its `with` block")
        start = time.monotonic()
        result = PageResult(page)
        problems = result.problems
        if self._check_redirect(page, result):
            return result
        problems.extend(self.links.problems(page))
        self._drain_logs()
        self.server.take_errors()
        url = self.server.base_url + page.lstrip("/")

        try:
            self.driver.get(url)
        except TimeoutException:
            problems.append(f"page did not finish loading within {self.timeout:g} s")
        except WebDriverException as exc:
            problems.append(f"page could not be opened: {exc.msg}")
            result.seconds = time.monotonic() - start
            return result

        try:
            state = self.driver.execute_async_script(JS_WAIT_MATHJAX, self.timeout)
            if state == "missing":
                problems.append("MathJax did not start: its script did not load")
            elif state == "timeout":
                problems.append(f"MathJax did not finish typesetting within {self.timeout:g} s")
            elif state.startswith("error"):
                problems.append(f"MathJax failed: {state}")
            # Images still loading and widgets not rendered are reported in detail by JS_INSPECT.
            self.driver.execute_async_script(JS_WAIT_SETTLED, self.timeout)
            found = self.driver.execute_async_script(JS_INSPECT)
        except TimeoutException:
            problems.append("the page's scripts did not answer the check in time")
            found = {"problems": [], "resources": []}
        except WebDriverException as exc:
            problems.append(f"the page could not be inspected: {exc.msg}")
            found = {"problems": [], "resources": []}
        problems.extend(found["problems"])
        problems.extend(self._check_layout())

        console, network = self._drain_logs()
        for entry in console:
            if entry.get("level") == "SEVERE" and not any(p in entry.get("message", "") for p in IGNORED_PATHS):
                problems.append(f"console error: {entry.get('message', '').strip()}")

        requested = set(found["resources"])
        for entry in network:
            try:
                message = json.loads(entry["message"])["message"]
            except (KeyError, ValueError):
                continue
            if message.get("method") == "Network.requestWillBeSent":
                requested.add(message["params"]["request"]["url"])
            elif message.get("method") == "Network.webSocketCreated":
                requested.add(message["params"]["url"])
        for req in sorted(u for u in requested if _external(u)):
            problems.append(f"request leaves the site: {req}")

        for err in self.server.take_errors():
            problems.append(f"HTTP error from the site: {err}")

        result.seconds = time.monotonic() - start
        return result


    def _viewport(self, width: int, height: int) -> None:
        """Make the page's viewport exactly ``width`` x ``height`` CSS pixels (a phone's width
        is emulated as a mobile device, so the page's ``<meta name="viewport">`` applies)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    def _check_layout(self) -> list[str]:
        """Over-wide code, outputs and equations at each of :data:`VIEWPORTS` on the light theme
        and at the first one (the design width) again on the dark theme; the figures on each of
        :data:`THEMES`. A problem found on both themes is reported once. The page is left on
        the light theme at the first viewport."""
        from selenium.common.exceptions import TimeoutException

        out: list[str] = []
        sizes = list(VIEWPORTS.items())
        try:
            for theme in THEMES:
                self.driver.execute_async_script(JS_SET_THEME, theme)
                for i, (name, (width, height)) in enumerate(sizes if theme == THEMES[0] else sizes[:1]):
                    self._viewport(width, height)
                    # figures: on the dark theme (on the light one, dark ink on a clear
                    # background reads as it was drawn)
                    figures = theme if i == 0 and theme != THEMES[0] else ""
                    out.extend(self.driver.execute_async_script(JS_LAYOUT, name, figures, i == 0))
        except TimeoutException:
            out.append("the layout check did not answer in time")
        finally:
            self.driver.execute_async_script(JS_SET_THEME, THEMES[0])
            self._viewport(*sizes[0][1])
        return list(dict.fromkeys(out))

    def search(self, word: str) -> tuple[bool, list[str]]:
        """Open ``search.html?q=word``; return (whether the search finished, the result links as
        paths relative to the site folder, without their ``#``/``?`` parts)."""
        self.driver.get(self.server.base_url + "search.html?q=" + quote(word))
        found = self.driver.execute_async_script(JS_SEARCH_RESULTS, self.timeout)
        links = []
        for href in found["hrefs"]:
            path = urlsplit(href).path
            path = urlsplit(self.server.base_url).path + path if not path.startswith("/") else path
            links.append(posixpath.normpath(path).lstrip("/"))
        return found["finished"], links

    def screenshot(self, page: str, out: Path, *, theme: str = THEMES[0],
                   viewport: str = next(iter(VIEWPORTS))) -> Path:
        """Save a screenshot of ``page`` as a window of ``viewport`` (a key of
        :data:`VIEWPORTS`) on ``theme`` shows it, to ``out``. The window is left light, at the
        first viewport."""
        if theme not in THEMES or viewport not in VIEWPORTS:
            raise ValueError(f"theme must be one of {THEMES} and viewport one of {tuple(VIEWPORTS)}; "
                             f"got {theme!r}, {viewport!r}")
        self._viewport(*VIEWPORTS[viewport])
        self.driver.get(self.server.base_url + page.lstrip("/"))
        self.driver.execute_async_script(JS_WAIT_MATHJAX, self.timeout)
        self.driver.execute_async_script(JS_SET_THEME, theme)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(out))
        self.driver.execute_async_script(JS_SET_THEME, THEMES[0])
        self._viewport(*next(iter(VIEWPORTS.values())))
        return out


def check_search(checker: BrowserChecker, words: dict[str, str] = SEARCH_WORDS) -> PageResult:
    """The site's search finds each page of ``words`` for its word (pages absent from the build
    are skipped: a chapter not yet written)."""
    result = PageResult("search.html")
    start = time.monotonic()
    for page, word in words.items():
        if not (checker.root / page).is_file():
            continue
        finished, links = checker.search(word)
        if not finished:
            result.problems.append(f"search for {word!r} did not finish within {checker.timeout:g} s")
        elif page not in links:
            result.problems.append(f"search for {word!r} does not find {page} (found {len(links)} pages)")
    result.seconds = time.monotonic() - start
    return result


# --------------------------------------------------------------------------------------------
# The whole site


def find_pages(root: Path) -> list[str]:
    """Every ``*.html`` page under ``root``, relative and sorted, skipping top-level ``_*`` folders."""
    root = Path(root)
    pages = []
    for path in root.rglob("*.html"):
        rel = path.relative_to(root)
        if len(rel.parts) > 1 and rel.parts[0].startswith("_"):
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


def check_site(root: Path, timeout: float = 20.0, pages: list[str] | None = None) -> list[PageResult]:
    """Check ``pages`` (default: every page of :func:`find_pages`) of the site in ``root``; with
    every page, also the search (:func:`check_search`) and the screenshots."""
    root = Path(root)
    if not root.is_dir():
        raise CheckError(f"{root} does not exist: build the book first (jupyter-book build .)")
    whole_site = pages is None
    pages = find_pages(root) if pages is None else pages
    if not pages:
        raise CheckError(f"no .html pages found in {root}: build the book first (jupyter-book build .)")
    with BrowserChecker(root, timeout=timeout) as checker:
        out = [checker.check(page) for page in pages]
        if whole_site:
            out.append(check_search(checker))
            shots = root.parent / "screenshots"
            for page in SCREENSHOT_PAGES:
                if (root / page).is_file():
                    checker.screenshot(page, shots / (Path(page).stem + ".png"))
            # the chapter as a reader on the dark theme, and on a phone, sees it
            chapter = SCREENSHOT_PAGES[-1]
            if (root / chapter).is_file():
                stem = Path(chapter).stem
                checker.screenshot(chapter, shots / f"{stem}-dark.png", theme="dark")
                checker.screenshot(chapter, shots / f"{stem}-phone.png", viewport="phone 390x844")
        return out


def format_report(results: list[PageResult], elapsed: float) -> str:
    """The per-page report and the one-line summary."""
    lines = []
    for res in results:
        if res.ok:
            continue
        lines.append(f"FAIL {res.page} ({res.seconds:.1f} s)")
        lines.extend(f"    - {p}" for p in res.problems)
    failed = sum(not r.ok for r in results)
    lines.append(f"browser check: {len(results)} pages, {failed} failed ({elapsed:.1f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 all pages pass, 1 a page failed, 2 the check could not run."""
    parser = argparse.ArgumentParser(
        description="Open every page of the built book in headless Chromium and fail on console "
                    "errors, broken images, untypeset math, notebook errors and requests that leave the site.")
    parser.add_argument("build_dir", nargs="?", type=Path, default=DEFAULT_BUILD_DIR,
                        help="the built HTML folder (default: _build/html)")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for a page, MathJax, images and widgets (default: 20)")
    parser.add_argument("--page", action="append", dest="pages", metavar="PAGE",
                        help="check only this page (relative to BUILD_DIR); may be repeated")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the pages that passed")
    args = parser.parse_args(argv)

    start = time.monotonic()
    try:
        results = check_site(args.build_dir, timeout=args.timeout, pages=args.pages)
    except CheckError as exc:
        print(f"browser check: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        for res in results:
            if res.ok:
                note = f", {res.note}" if res.note else ""
                print(f"ok   {res.page} ({res.seconds:.1f} s{note})")
    print(format_report(results, time.monotonic() - start))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
