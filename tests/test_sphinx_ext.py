"""The book's Sphinx extension renders numbers from results files, and fails loudly without them."""

import re
import sys
import textwrap
from pathlib import Path

import pytest

from papernotes_core import results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))

sphinx_app = pytest.importorskip("sphinx.application")


def write_results(base: Path):
    for scale, loss, seeds in (("quick", 0.5, [0]), ("cpu", 0.12345, [0, 1, 2])):
        results.write({
            "slug": "toy", "scale": scale,
            "metrics": {"loss.a": loss, "loss_sd.a": 0.01, "err.a": 0.0312, "ll": -90.123, "ll_se": 0.26,
                        **({"compute_s": 100.0} if scale == "cpu" else {})},
            "curves": {},
            "paper": {"loss.a": {"value": 0.11, "source": "Table 9", "status": "V"},
                      "loss_sd.a": {"value": 0.02, "source": "Table 9", "status": "V"}},
            "provenance": results.provenance({"epochs": 40, "lrs": [0.001, 0.01], "optimizer": "adam"}, seeds,
                                             wall_s=12.0, command="test"),
        }, base)


def build(tmp_path: Path, body: str, results_dir: Path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text("extensions = ['papernotes_sphinx']\n")
    (src / "index.rst").write_text(textwrap.dedent(body))
    monkeypatch.setenv("PAPERNOTES_RESULTS", str(results_dir))
    out = tmp_path / "out"
    from io import StringIO

    warnings = StringIO()
    app = sphinx_app.Sphinx(str(src), str(src), str(out), str(tmp_path / "doctrees"), "html",
                            status=None, warning=warnings, freshenv=True)
    app.build()
    html = (out / "index.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))  # visible text, tags dropped
    text = re.sub(r" ([.,%])", r"\1", text)
    return text, warnings.getvalue()


def test_result_role_and_repro_table(tmp_path, monkeypatch):
    write_results(tmp_path / "res")
    html, warnings = build(tmp_path, """
        Title
        =====

        Loss :result:`toy/cpu/loss.a` and :result:`toy/cpu/loss.a±loss_sd.a:4`, error :result:`toy/cpu/err.a%`,
        epochs :result:`toy/cpu/config.epochs:2`.

        .. repro-table:: toy
           :scales: quick cpu paper

           loss.a ± loss_sd.a : Final loss
           err.a : Error
        """, tmp_path / "res", monkeypatch)
    assert warnings == ""
    assert "Loss 0.123 and 0.1235 ± 0.0100" in html
    assert "error 3.12%" in html
    assert "epochs 40" in html
    # the table: paper value with source and status, ours at both scales, a missing scale noted
    assert "0.110 ± 0.020 (Table 9; checked in the paper)" in html  # the paper's own spread beside its value
    assert "0.123 ± 0.010" in html
    assert "0.500 ± " not in html and "0.500" in html  # one seed: no spread shown
    assert "not reported" in html  # err.a has no paper entry
    assert "paper: not run yet" in html and "cpu: 3 seeds, 100 s of compute on cpu (this file written in 12.0 s)" in html
    assert "quick: 1 seed, 12.0 s on cpu" in html


def test_repro_table_names_the_seeds_and_the_run_numbers_were_carried_from(tmp_path, monkeypatch):
    import papernotes_sphinx

    write_results(tmp_path / "res")
    cpu = results.read("toy", "cpu", tmp_path / "res")
    cpu["provenance"]["carried_over"] = {"commit": "abcdef1234", "date": "2026-11-30T10:00:00+00:00",
                                         "metrics": ["err.a"], "curves": [], "prefixes": ["err"]}
    results.write(cpu, tmp_path / "res")
    html, warnings = build(tmp_path, """
        Title
        =====

        .. repro-table:: toy
           :scales: cpu
           :seeds: one seed per game

           err.a : Error

        .. repro-table:: toy
           :scales: cpu
           :seeds: one seed

           loss.a : Loss
        """, tmp_path / "res", monkeypatch)
    assert not [w for w in warnings.splitlines() if "already registered" not in w]
    assert "cpu: one seed per game, carried over from the run at commit abcdef1, 2026-11-30" in html
    assert "cpu: one seed, 100 s of compute" in html and "3 seeds" not in html
    assert papernotes_sphinx._seeds_option("cpu: one seed; paper: two", ["quick", "cpu", "paper"]) == \
        {"cpu": "one seed", "paper": "two"}
    assert papernotes_sphinx._seeds_option("one seed: 0", ["cpu"]) == {"cpu": "one seed: 0"}


def test_a_standard_error_over_data_is_shown_for_one_seed(tmp_path, monkeypatch):
    write_results(tmp_path / "res")
    html, warnings = build(tmp_path, """
        Title
        =====

        LL :result:`toy/quick/ll±ll_se`. Rates :result:`toy/cpu/config.lrs:1`.
        """, tmp_path / "res", monkeypatch)
    # (a second Sphinx app in one process warns that node classes are registered already)
    assert not [w for w in warnings.splitlines() if "already registered" not in w]
    assert "LL -90.1 ± 0.3." in html
    assert "Rates 0.001, 0.01." in html                     # a list in the config: every element


@pytest.mark.parametrize("body, match", [
    (":result:`toy/cpu/nope`", "has no metric 'nope'"),
    (":result:`toy/cpu/config.optimizer`", "'config.optimizer' is 'adam', not a number"),
    (":result:`toy/paper/loss.a`", "no results at"),
    (".. repro-table:: toy\n\n   loss.a without separator\n", "must read 'metric"),
    (".. repro-table:: missing\n\n   loss.a : x\n", "no results file at any"),
])
def test_missing_numbers_are_warnings(tmp_path, monkeypatch, body, match):
    write_results(tmp_path / "res")
    _, warnings = build(tmp_path, "Title\n=====\n\n" + body + "\n", tmp_path / "res", monkeypatch)
    assert match in warnings


def test_an_optional_row_reads_not_run_where_a_scale_lacks_it(tmp_path, monkeypatch):
    write_results(tmp_path / "res")
    html, warnings = build(tmp_path, """
        Title
        =====

        .. repro-table:: toy
           :scales: quick cpu

           loss.a ± loss_sd.a : Final loss
           bigmodel.loss? : Loss of a model only the paper scale trains
        """, tmp_path / "res", monkeypatch)
    assert not [w for w in warnings.splitlines() if "already registered" not in w]
    assert html.count("not run at this scale") == 2
    # without the mark, a missing metric still fails the strict build
    (tmp_path / "again").mkdir()
    _, warnings = build(tmp_path / "again", """
        Title
        =====

        .. repro-table:: toy
           :scales: cpu

           bigmodel.loss : Loss
        """, tmp_path / "res", monkeypatch)
    assert "bigmodel.loss" in warnings


def test_percent_tables_show_the_papers_number_as_a_percentage_too(tmp_path, monkeypatch):
    write_results(tmp_path / "res")
    html, warnings = build(tmp_path, """
        Title
        =====

        .. repro-table:: toy
           :scales: cpu
           :percent:

           loss.a ± loss_sd.a : Final loss
        """, tmp_path / "res", monkeypatch)
    assert not [w for w in warnings.splitlines() if "already registered" not in w]
    assert "11.0 ± 2.0% (Table 9; checked in the paper)" in html
    assert "12.3 ± 1.0%" in html


def _sub(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


def test_dashboard_reads_every_number_from_results_and_follows_an_edit(tmp_path, monkeypatch):
    """The dashboard's rows come from the results files: edit one (in a temporary copy) and the
    page changes, status included."""
    res = tmp_path / "res"
    write_results(res)
    body = """
        Title
        =====

        .. repro-dashboard::

           toy/loss.a ± loss_sd.a : a toy reason
           gone/x : never run
        """
    html, warnings = build(_sub(tmp_path, "one"), body, res, monkeypatch)
    assert "toy loss.a 0.110 ± 0.020 0.500 0.123" in html   # paper ± its error, quick, largest (cpu)
    assert "cpu, cpu, " in html and "3 seeds reproduced a toy reason" in html   # 0.123 inside 0.11 ± 0.02
    assert "gone x not yet run never run" in html
    assert "WARNING: repro-dashboard" not in warnings
    html, warnings = build(_sub(tmp_path, "ours"), body + "   toy/err.a : only ours\n", res, monkeypatch)
    assert "toy err.a not read 0.0312 0.0312" in html and "no number to compare only ours" in html
    _, warnings = build(_sub(tmp_path, "bad"), body + "   toy/nope : a typo\n", res, monkeypatch)
    assert "no number 'nope'" in warnings                   # a name in neither block fails the build
    data = results.read("toy", "cpu", res)
    data["metrics"]["loss.a"] = 0.135                       # outside the paper's 0.11 ± 0.02
    results.write(data, res)
    html, _ = build(_sub(tmp_path, "two"), body, res, monkeypatch)
    assert "0.135" in html and "3 seeds differs a toy reason" in html
    no_error = body.replace(" ± loss_sd.a", "")
    data["metrics"]["loss.a"] = 0.1216                      # 10.5 % off, no error to lean on
    results.write(data, res)
    html, _ = build(_sub(tmp_path, "three"), no_error, res, monkeypatch)
    assert "0.122" in html and "3 seeds differs" in html
    data["metrics"]["loss.a"] = 0.118                       # 7.3 % off
    results.write(data, res)
    html, _ = build(_sub(tmp_path, "four"), no_error, res, monkeypatch)
    assert "0.118" in html and "3 seeds close" in html


def test_dashboard_status_cut_offs():
    import papernotes_sphinx as ext

    assert ext._status(1.015, 1.0, None) == "reproduced" and ext._status(1.05, 1.0, None) == "close"
    assert ext._status(1.2, 1.0, None) == "differs" and ext._status(1.2, 1.0, 0.25) == "reproduced"
    assert ext._status(1.3, 1.0, 0.25) == "differs" and ext._status(0.92, 1.0, 0.01) == "close"


def test_bench_appendix(tmp_path, monkeypatch):
    res = tmp_path / "res"
    results.write({"slug": "toyb", "scale": "bench", "metrics": {"ratio": 2.5, "ratio_q25": 2.0, "ratio_q75": 3.0},
                   "curves": {}, "paper": {}, "provenance": results.provenance({}, [0], wall_s=1.0, command="t")}, res)
    html, warnings = build(tmp_path, """
        Title
        =====

        .. bench-appendix::

           toyb/ratio ~ ratio_q25 ratio_q75 : ours against a peer
           toyb/nothing : a missing metric
        """, res, monkeypatch)
    assert "nothing" in warnings
    html, warnings = build(_sub(tmp_path, "ok"), """
        Title
        =====

        .. bench-appendix::

           toyb/ratio ~ ratio_q25 ratio_q75 : ours against a peer
        """, res, monkeypatch)
    assert "WARNING: bench-appendix" not in warnings
    assert "toyb ratio 2.50 2.00 – 3.00 ours against a peer bench" in html


def test_gif_still_is_the_first_frame_as_png(tmp_path):
    """GifStill (for the PDF): a GIF becomes a PNG of its first frame, without ImageMagick."""
    from PIL import Image

    import papernotes_sphinx

    frames = [Image.new("RGB", (6, 4), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    gif = tmp_path / "a.gif"
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = tmp_path / "a.png"
    converter = papernotes_sphinx.GifStill.__new__(papernotes_sphinx.GifStill)   # no document needed
    assert converter.is_available()
    assert ("image/gif", "image/png") in converter.conversion_rules
    assert converter.convert(str(gif), str(out))
    with Image.open(out) as still:
        assert still.format == "PNG" and still.size == (6, 4)
        assert still.convert("RGB").getpixel((0, 0))[0] > 200      # red: the first frame
