"""The browser check (tools/browser_check.py) catches every kind of broken page it promises to.

A tiny site is written to a temporary folder, one page per failure kind, and each page is opened
in headless Chromium by the checker: the clean pages must pass and every broken one must fail
with the expected problem. Runs wherever Debian's Chromium is installed
(``tools/install_system.sh``); skipped, with the reason, only where it is not.
"""

from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason="/usr/bin/chromium is absent: install it with `bash tools/install_system.sh`",
    ),
]


def _load_checker():
    """Import tools/browser_check.py (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("browser_check", module)
    spec.loader.exec_module(module)
    return module


bc = _load_checker()

#: A valid 1x1 PNG: one opaque black pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAX+XDSwAAAABJRU5ErkJggg=="
)

#: A valid 1x1 PNG: one half-transparent green pixel (a figure saved with a transparent
#: background).
CLEAR_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

#: Stands in for MathJax 3: after a short delay it "typesets" every .math element (or, with
#: data-fail, an mjx-merror) and resolves MathJax.startup.promise, as MathJax does.
FAKE_MATHJAX = """
(function () {
  var fail = document.currentScript.hasAttribute("data-fail");
  var resolve;
  window.MathJax = {version: "3.2.2", startup: {promise: new Promise(function (r) { resolve = r; })}};
  window.addEventListener("DOMContentLoaded", function () {
    setTimeout(function () {
      document.querySelectorAll(".math").forEach(function (span) {
        var c = document.createElement("mjx-container");
        c.innerHTML = fail ? '<mjx-merror data-mjx-error="Undefined control sequence \\\\foo">\\\\foo</mjx-merror>' : "x";
        span.replaceChildren(c);
      });
      resolve();
    }, 300);
  });
})();
"""


def page(title: str, body: str, head: str = "") -> str:
    """A minimal HTML page."""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def cell_output(inner: str, tags: str = "") -> str:
    """A notebook cell as myst-nb renders it, with ``inner`` as its output."""
    return (
        f'<div class="cell {tags} docutils container"><div class="cell_input docutils container">'
        '<div class="highlight-ipython3 notranslate"><div class="highlight"><pre>1/0</pre></div></div></div>'
        f'<div class="cell_output docutils container">{inner}</div></div>'
    )


TRACEBACK = (
    '<div class="output traceback highlight-ipythontb notranslate"><div class="highlight"><pre>'
    '<span class="gt">-----------------------------------------------------</span>\n'
    '<span class="ne">ZeroDivisionError</span>     Traceback (most recent call last)\n'
    '<span class="ne">ZeroDivisionError</span>: division by zero\n</pre></div></div>'
)

STDERR_ERROR = (
    '<div class="output stderr highlight-myst-ansi notranslate"><div class="highlight"><pre>'
    "RuntimeError: CUDA out of memory\n</pre></div></div>"
)

STDERR_WARNING = (
    '<div class="output stderr highlight-myst-ansi notranslate"><div class="highlight"><pre>'
    "100%|##########| 10/10 [00:01&lt;00:00]\n/tmp/x.py:1: UserWarning: careful\n</pre></div></div>"
)

PAGES = {
    # Passing pages.
    "clean.html": page(
        "Clean",
        '<p>An image: <img src="_images/dot.png" alt="dot"></p>'
        "<p>TeX in code is not math: <code>$$x$$ and \\(y\\)</code></p>"
        "<pre>re.compile(r'\\[a-z\\]')</pre>"
        + cell_output(STDERR_WARNING),
    ),
    "sub/nested.html": page("Nested", '<p><img src="../_images/dot.png" alt="dot"></p>'),
    "raises.html": page("Expected error", cell_output(TRACEBACK, tags="tag_raises-exception")),
    "mathjax_ok.html": page(
        "Typeset",
        '<p>Inline <span class="math notranslate nohighlight">\\(a^2\\)</span>.</p>'
        '<div class="math notranslate nohighlight">\\[b^2\\]</div>',
        head='<script defer src="_static/mathjax/fake-tex.js"></script>',
    ),
    "index.html": '<!DOCTYPE html><html><head><meta http-equiv="Refresh" content="0; url=clean.html" /></head></html>',
    # Failing pages.
    "console_error.html": page("Console error", "<script>console.error('something broke');</script>"),
    "throws.html": page("Throws", "<script>null.boom();</script>"),
    "broken_image.html": page("Broken image", '<p><img src="_images/missing.png" alt="gone"></p>'),
    "corrupt_image.html": page("Corrupt image", '<p><img src="_images/corrupt.png" alt="corrupt"></p>'),
    "untypeset.html": page("Untypeset", "<p>Display math left raw: $$x$$</p>"),
    "untypeset_sphinx.html": page(
        "MathJax missing",
        '<p><span class="math notranslate nohighlight">\\(x\\)</span></p>',
        head='<script defer src="_static/mathjax/missing.js"></script>',
    ),
    "mathjax_error.html": page(
        "MathJax error",
        '<p><span class="math notranslate nohighlight">\\(\\foo\\)</span></p>',
        head='<script defer data-fail src="_static/mathjax/fake-tex.js"></script>',
    ),
    "stray_dollars.html": page(
        "Stray dollars",
        '<p>Energy $<span class="math notranslate nohighlight">\\(E\\)</span>$ here.</p>',
    ),
    "notebook_error.html": page("Notebook error", cell_output(TRACEBACK)),
    "notebook_stderr.html": page("Notebook stderr", cell_output(STDERR_ERROR)),
    "external_request.html": page(
        "External request",
        # 127.0.0.2 is on this machine (nothing listens there), but it is not the site's host.
        "<script>fetch('http://127.0.0.2:9/cdn/lib.js').catch(function () {});</script>",
    ),
    "widget.html": page(
        "Widget",
        cell_output('<script type="application/vnd.jupyter.widget-view+json">'
                    '{"model_id": "abc", "version_major": 2, "version_minor": 0}</script>'),
    ),
    "bad_redirect.html": '<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; url=nowhere.html"></head></html>',
}

#: For each failing page, a fragment that one of its reported problems must contain.
EXPECTED = {
    "console_error.html": "console error: ",
    "throws.html": "Uncaught TypeError",
    "broken_image.html": "image did not load: ",
    "corrupt_image.html": "image did not load: ",
    "untypeset.html": "untypeset formula: Display math left raw: $$x$$",
    "untypeset_sphinx.html": "untypeset formula: \\(x\\)",
    "mathjax_error.html": "MathJax error: Undefined control sequence",
    "stray_dollars.html": "formula between stray dollar signs",
    "notebook_error.html": "notebook error output: ",
    "notebook_stderr.html": "notebook stderr shows an error: RuntimeError",
    "external_request.html": "request leaves the site: http://127.0.0.2:9/cdn/lib.js",
    "widget.html": "widget did not render",
    "bad_redirect.html": "redirects to a missing page: nowhere.html",
}

PASSING = ["clean.html", "sub/nested.html", "raises.html", "mathjax_ok.html", "index.html"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the tiny site: the pages, a good PNG, a corrupt PNG and the fake MathJax."""
    root = tmp_path_factory.mktemp("site")
    for name, html in PAGES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    (root / "_images").mkdir()
    (root / "_images" / "dot.png").write_bytes(PNG)
    (root / "_images" / "clear.png").write_bytes(CLEAR_PNG)
    (root / "_images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (root / "_static" / "mathjax").mkdir(parents=True)
    (root / "_static" / "mathjax" / "fake-tex.js").write_text(FAKE_MATHJAX, encoding="utf-8")
    (root / "_static" / "stray.html").write_text(page("Asset", "<p>$$not a page$$</p>"), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def checker(site: Path):
    """One headless Chromium, serving the site, for all the tests of this module."""
    with bc.BrowserChecker(site, timeout=10) as running:
        yield running


@pytest.mark.parametrize("name", PASSING)
def test_clean_page_passes(checker, name: str) -> None:
    result = checker.check(name)
    assert result.problems == [], f"{name} should pass"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_page_fails(checker, name: str) -> None:
    result = checker.check(name)
    assert not result.ok, f"{name} should fail"
    wanted = EXPECTED[name]
    assert any(wanted in problem for problem in result.problems), (
        f"{name}: expected a problem containing {wanted!r}, got {result.problems}"
    )


def test_missing_mathjax_is_reported_quickly(checker) -> None:
    """A MathJax script that fails to load is reported without waiting for the whole timeout."""
    result = checker.check("untypeset_sphinx.html")
    assert "MathJax did not start: its script did not load" in result.problems
    assert any("HTTP error from the site: 404 /_static/mathjax/missing.js" in p for p in result.problems)
    assert result.seconds < 8


def test_find_pages_skips_asset_folders(site: Path) -> None:
    pages = bc.find_pages(site)
    assert "sub/nested.html" in pages and "clean.html" in pages
    assert not any(p.startswith("_static/") for p in pages)


def test_external_hosts() -> None:
    assert bc._external("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js")
    assert bc._external("http://localhost:8000/x.js")
    assert not bc._external("http://127.0.0.1:8000/_static/x.js")
    assert not bc._external("data:image/png;base64,AAAA")


def test_missing_browser_names_install_script(tmp_path: Path) -> None:
    with pytest.raises(bc.CheckError, match="tools/install_system.sh"):
        bc.require_browser(tmp_path / "chromium", tmp_path / "chromedriver")


def test_command_line_summary(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints the per-page report and the one-line summary, and exits 1 on failure."""
    code = bc.main([str(site), "--timeout", "10", "--page", "clean.html", "--page", "throws.html"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL throws.html" in out
    assert "browser check: 2 pages, 1 failed" in out
    assert bc.main([str(site), "--page", "clean.html"]) == 0
    assert "browser check: 1 pages, 0 failed" in capsys.readouterr().out


def test_command_line_missing_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bc.main([str(tmp_path / "nope")]) == 2
    assert "build the book first" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Links and search

def _linked_site(tmp_path: Path) -> tuple[Path, Path]:
    """A build folder with two pages and a download, and a repository with one notebook."""
    root, repo = tmp_path / "html", tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    (root / "_sources" / "notebooks").mkdir(parents=True)
    (root / "_sources" / "notebooks" / "a.ipynb").write_text("{}")
    (repo / "notebooks").mkdir(parents=True)
    (repo / "notebooks" / "a.ipynb").write_text("{}")
    colab = "https://colab.research.google.com/github/o/r/blob/main/notebooks/"
    (root / "book" / "b.html").write_text(page("B", '<h2 id="sec">S</h2><a name="old"></a>'))
    links = {
        "good": ['b.html', 'b.html#sec', 'b.html#old', '#top', '../_sources/notebooks/a.ipynb',
                 colab + "a.ipynb", "https://example.org/x", "mailto:a@b.c", "../book/"],
        "bad": ['c.html', 'b.html#nowhere', '#nothere', '../_sources/notebooks/z.ipynb',
                colab + "z.ipynb", "../../outside.html"],
    }
    for name, hrefs in links.items():
        body = '<p id="top">' + "".join(f'<a href="{h}">x</a>' for h in hrefs) + "</p>"
        (root / "book" / f"{name}.html").write_text(page(name, body))
    (root / "book" / "index.html").write_text(page("I", "<p>index</p>"))
    return root, repo


def test_links_that_go_somewhere_pass(tmp_path: Path) -> None:
    root, repo = _linked_site(tmp_path)
    assert bc.LinkChecker(root, repo).problems("book/good.html") == []


def test_each_broken_link_is_named(tmp_path: Path) -> None:
    """A missing page, a missing anchor (on another page and on this one), a missing download, a
    Colab link to a notebook the repository lacks, and a link out of the build: one problem each."""
    root, repo = _linked_site(tmp_path)
    problems = bc.LinkChecker(root, repo).problems("book/bad.html")
    assert problems == [
        "link to a missing file: c.html",
        "link to a missing anchor: b.html#nowhere",
        "link to a missing anchor: #nothere",
        "link to a missing file: ../_sources/notebooks/z.ipynb",
        "Colab link to a notebook the repository lacks: "
        "https://colab.research.google.com/github/o/r/blob/main/notebooks/z.ipynb",
        "link leaves the build folder: ../../outside.html",
    ]


#: Stands in for Sphinx's search page: after a delay, lists clean.html for "hello" and nothing
#: for any other word, then writes the summary paragraph that marks the search finished.
FAKE_SEARCH = page("Search", """<div id="search-results"></div>
<script>
setTimeout(function () {
  var q = new URLSearchParams(location.search).get("q");
  var box = document.getElementById("search-results");
  box.innerHTML = (q === "hello" ? '<ul class="search"><li><a href="clean.html#x">Clean</a></li></ul>' : "")
    + '<p class="search-summary">done</p>';
}, 200);
</script>""")


def test_search_finds_pages_and_names_misses(checker, site: Path) -> None:
    (site / "search.html").write_text(FAKE_SEARCH, encoding="utf-8")
    assert checker.search("hello") == (True, ["clean.html"])
    result = bc.check_search(checker, {"clean.html": "hello", "sub/nested.html": "hello",
                                       "not_built.html": "x"})
    assert result.problems == ["search for 'hello' does not find sub/nested.html (found 1 pages)"]


def test_screenshot_is_a_png(checker, tmp_path: Path) -> None:
    import struct
    out = checker.screenshot("clean.html", tmp_path / "shots" / "clean.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    phone = checker.screenshot("clean.html", tmp_path / "shots" / "phone.png", viewport="phone 390x844")
    assert struct.unpack(">I", phone.read_bytes()[16:20])[0] == 390      # the PNG's width
    with pytest.raises(ValueError, match="theme must be one of"):
        checker.screenshot("clean.html", tmp_path / "x.png", theme="sepia")


# --------------------------------------------------------------------------------------------
# Layout at a laptop's and a phone's width, and figures on the dark theme

WIDE_LINE = "x = " + "1 + " * 40 + "1"     # 165 characters: wider than any box below


def test_over_wide_code_output_and_equation_are_named(checker, site: Path) -> None:
    """A code cell and an output that do not fit their box, and a display equation wider than its
    column, each fail with the window size; a short line passes."""
    body = (cell_output(f"<pre>{WIDE_LINE}</pre>")
            + '<div class="math"><mjx-container display="true" style="display:block">'
            '<mjx-math style="display:inline-block;width:2000px">x</mjx-math></mjx-container></div>'
            + "<pre>short = 1</pre>")
    (site / "wide.html").write_text(page("Wide", body), encoding="utf-8")
    problems = checker.check("wide.html").problems
    assert any(p.startswith("1280x800: over-wide output cell 1") and "165 characters" in p for p in problems), problems
    assert any(p.startswith("1280x800: over-wide equation") and "2000 px" in p for p in problems), problems
    assert any(p.startswith("phone 390x844: over-wide equation") for p in problems), problems
    assert not any("short = 1" in p for p in problems)


def test_equation_scaled_below_the_floor_at_the_laptop_width_is_named(checker, site: Path) -> None:
    """An equation that _static/papernotes.js had to scale to 0.75 to fit a 1280-pixel window
    should be split over lines instead."""
    body = ('<div class="math"><mjx-container display="true" data-pn-scale="0.75" style="display:block">'
            '<mjx-math style="display:inline-block;width:100px">x</mjx-math></mjx-container></div>')
    (site / "scaled.html").write_text(page("Scaled", body), encoding="utf-8")
    problems = checker.check("scaled.html").problems
    assert any("fits only scaled to 0.75: split it over lines" in p for p in problems), problems


def test_transparent_figure_fails_on_the_dark_theme(checker, site: Path) -> None:
    """A transparent figure with no light background of its own would show the dark page through
    it; an opaque one, or a transparent one on a white background, reads on both themes."""
    (site / "clear.html").write_text(page("Clear", '<img src="_images/clear.png" width="50">'), encoding="utf-8")
    (site / "backed.html").write_text(
        page("Backed", '<img src="_images/clear.png" width="50" style="background:#fff">'), encoding="utf-8")
    problems = checker.check("clear.html").problems
    assert any(p.startswith("dark theme: figure") and "clear.png" in p for p in problems), problems
    assert checker.check("backed.html").problems == []
