"""Sphinx extension: numbers about our runs, read from results files, never typed by hand.

* ``{result}`` role: one number in prose. ``{result}`elu/cpu/train_loss.elu``` renders that
  metric of ``results/cpu/elu.json`` to 3 significant figures; ``slug/scale/metric±sd_metric``
  renders "mean ± sd" (the sd is left out for a one-seed run); a trailing ``:N`` sets N
  significant figures; a ``%`` suffix renders a fraction as a percentage
  (``elu/cpu/test_error.elu%``); ``config.<field>`` reads the run's configuration.
* ``{repro-table}`` directive: the chapter's paper-against-ours table. The argument is the slug;
  each content line is ``metric [± sd_metric] : label``; ``metric? ...`` marks a row whose
  number a scale may not have (a model only the paper scale trains): there it reads "not run at
  this scale" instead of failing the build. Columns: the quantity, the paper's value
  (with its source and verification status from the file's ``paper`` block), and ours at each
  scale that has a results file (``:scales:`` picks them; default ``quick cpu paper``). The note
  under it gives each scale's seeds (``:seeds:`` replaces the count, e.g. "one seed per game",
  where the rows come from runs with fewer seeds than the file's; ``cpu: ...; paper: ...`` gives
  one text per scale), cost and commit; where every
  row was carried over from an earlier run (``provenance.carried_over``), that run's commit. A caption
  lists each scale's seeds, commit and date.

* ``{repro-dashboard}`` directive: every chapter's headline numbers on one page. Each content
  line is ``slug/metric [± paper_error_metric] : reason``: the paper's number beside ours at
  ``quick`` scale and at the largest scale that measured it (with that run's scale, device,
  date, commit and seeds), a status (reproduced, close, differs, not yet run; the cut-offs are
  :data:`REPRODUCED` and :data:`CLOSE`) and the reason in one line.
* ``{bench-appendix}`` directive: each benchmark ratio from ``results/bench/``; content lines
  ``slug/metric [~ q25_metric q75_metric] : what it compares``.

A reference to a missing file or metric is a Sphinx warning, so the strict build (``-W``) fails
rather than print a stale or invented number. Results are read from ``PAPERNOTES_RESULTS`` or
the repository's ``results/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.transforms.post_transforms.images import ImageConverter
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

from papernotes_core import results

logger = logging.getLogger(__name__)
STATUS_TEXT = {"V": "checked in the paper", "V2": "checked in a second-hand copy", "U": "unverified"}


def _results_dir(env) -> Path:
    value = os.environ.get("PAPERNOTES_RESULTS", "").strip()
    return Path(value) if value else Path(env.app.confdir) / "results"


def _load(env, slug: str, scale: str):
    path = results.path_for(slug, scale, _results_dir(env))
    env.note_dependency(str(path))
    return results.read(slug, scale, _results_dir(env))


def _with_spread(text: str, spread: float, digits: int) -> str:
    """``text ± spread``, the spread to the same decimal places as the mean: "0.000660 ± 0.000050"."""
    decimals = len(text.partition(".")[2]) if "e" not in text else None
    return text + " ± " + (f"{spread:,.{decimals}f}" if decimals is not None
                           else results.format_number(spread, max(digits - 1, 1)))


def _format(data: dict, spec: str, digits: int, percent: bool) -> str:
    """One number (``metric``) or ``metric ± sd_metric``. A spread over seeds is left out for a
    one-seed run, where it would be a meaningless 0; a standard error over data points (a
    metric whose name has ``_se``) is shown whatever the seeds. Integers (e.g.
    ``config.epochs``) print as integers."""
    main, _, sd = spec.partition("±")
    value = results.metric(data, main.strip())
    if isinstance(value, (list, tuple)) and value and not sd.strip():
        # a list in the config (e.g. the learning-rate grid): every element, comma-separated
        return ", ".join(_format({**data, "metrics": {"_": v}}, "_", digits, percent) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{main.strip()!r} is {value!r}, not a number (or a list of numbers)")
    if isinstance(value, int):
        return f"{value:,}"
    scale = 100.0 if percent else 1.0
    text = results.format_number(value * scale, digits)
    if sd.strip():
        sd_value = results.metric(data, sd.strip())  # looked up even when not shown: a typo fails
        if len(data["provenance"]["seeds"]) > 1 or "_se" in sd.strip():
            text = _with_spread(text, sd_value * scale, digits)
    return text + ("%" if percent else "")


def _parse_spec(text: str) -> tuple[str, int, bool]:
    percent = text.endswith("%")
    text = text.rstrip("%")
    digits = 3
    if ":" in text:
        text, _, d = text.rpartition(":")
        digits = int(d)
    return text.strip(), digits, percent


class ResultRole(SphinxRole):
    """``{result}`slug/scale/metric[±sd][:digits][%]```."""

    def run(self):
        try:
            spec, digits, percent = _parse_spec(self.text)
            slug, scale, metric = spec.split("/", 2)
            data = _load(self.env, slug.strip(), scale.strip())
            text = _format(data, metric, digits, percent)
        except (ValueError, KeyError, FileNotFoundError) as err:
            logger.warning(f"{{result}} `{self.text}`: {err}", location=self.get_location())
            return [nodes.problematic(self.rawtext, self.rawtext)], []
        return [nodes.inline(self.rawtext, text, classes=["papernotes-result"])], []


def _seeds_option(text: str | None, scales: list[str]) -> dict[str, str]:
    """``:seeds:`` as ``{scale: text}``: either one text for every scale, or ``scale: text`` parts
    separated by ``;`` (e.g. ``cpu: one seed per game; paper: one seed per game``)."""
    if not text:
        return {}
    parts = [p.strip() for p in text.split(";") if p.strip()]
    keyed = [p.partition(":") for p in parts]
    if all(sep and key.strip() in scales for key, sep, _ in keyed):
        return {key.strip(): value.strip() for key, _, value in keyed}
    return {scale: text.strip() for scale in scales}


class ReproTable(SphinxDirective):
    """The paper-against-ours table of one chapter."""

    required_arguments = 1
    has_content = True
    option_spec = {"scales": directives.unchanged, "digits": directives.positive_int,
                   "percent": directives.flag, "caption": directives.unchanged, "seeds": directives.unchanged}

    def run(self):
        slug = self.arguments[0]
        scales = (self.options.get("scales") or "quick cpu paper").split()
        digits = self.options.get("digits", 3)
        percent = "percent" in self.options
        loaded, missing = {}, []
        for scale in scales:
            try:
                loaded[scale] = _load(self.env, slug, scale)
            except FileNotFoundError:
                missing.append(scale)
            except ValueError as err:
                logger.warning(f"repro-table {slug}: {err}", location=self.get_location())
                return []
        if not loaded:
            logger.warning(f"repro-table {slug}: no results file at any of the scales {scales}",
                           location=self.get_location())
            return []
        rows = []
        for line in self.content:
            if not line.strip():
                continue
            spec, sep, label = line.partition(" : ")
            if not sep:
                logger.warning(f"repro-table {slug}: a row must read 'metric [± sd] : label', got {line!r}",
                               location=self.get_location())
                return []
            rows.append((spec.strip(), label.strip()))
        paper_block = next(iter(loaded.values()))["paper"]
        header = ["Quantity", "Paper"] + [f"Ours ({s})" for s in loaded]
        table_rows = []
        for spec, label in rows:
            optional = spec.partition("±")[0].strip().endswith("?")
            spec = spec.replace("?", "", 1) if optional else spec
            main = spec.partition("±")[0].strip()
            entry = paper_block.get(main)
            if entry is None:
                paper_text = "not reported"
            else:
                # the paper's number on the same footing as ours: a percentage under :percent:
                scale = 100.0 if percent else 1.0
                value = "—" if entry["value"] is None else results.format_number(entry["value"] * scale, digits)
                sd_entry = paper_block.get(spec.partition("±")[2].strip()) if "±" in spec else None
                if entry["value"] is not None and sd_entry is not None and sd_entry["value"] is not None:
                    value = _with_spread(value, sd_entry["value"] * scale, digits)
                if entry["value"] is not None and percent:
                    value += "%"
                paper_text = f"{value} ({entry['source']}; {STATUS_TEXT[entry['status']]})"
            cells = [label, paper_text]
            for scale, data in loaded.items():
                try:
                    cells.append(_format(data, spec, digits, percent))
                except KeyError as err:
                    if optional:
                        cells.append("not run at this scale")
                        continue
                    logger.warning(f"repro-table {slug}: {err}", location=self.get_location())
                    return []
            table_rows.append(cells)
        table = self._build_table(header, table_rows)
        notes = []
        mains = [spec.partition("±")[0].strip().rstrip("?") for spec, _ in rows]
        seeds_for = _seeds_option(self.options.get("seeds"), scales)
        for scale, data in loaded.items():
            prov = data["provenance"]
            carried = prov.get("carried_over") or {}
            if mains and all(m in carried.get("metrics", ()) for m in mains):
                # Every number of this table came from an earlier run: name that run, not this file's.
                seeds = seeds_for.get(scale) or "seeds as in that run"
                notes.append(f"{scale}: {seeds}, carried over from the run at commit "
                             f"{(carried.get('commit') or 'no commit')[:7]}, {str(carried.get('date'))[:10]}")
                continue
            commit = (prov.get("commit") or "no commit")[:7] + (" (uncommitted changes)" if prov.get("dirty") else "")
            n = len(prov["seeds"])
            seeds = seeds_for.get(scale) or f"{n} seed{'s' if n != 1 else ''}"
            compute = data["metrics"].get("compute_s")
            cost = (f"{compute:,.0f} s of compute on {prov.get('device')} (this file written in {prov.get('wall_s')} s)"
                    if isinstance(compute, (int, float)) and compute > 1.5 * float(prov.get("wall_s") or 0)
                    else f"{prov.get('wall_s')} s on {prov.get('device')}")
            notes.append(f"{scale}: {seeds}, {cost}, commit {commit}, {str(prov.get('date'))[:10]}")
        for scale in missing:
            notes.append(f"{scale}: not run yet")
        caption = self.options.get("caption", "Paper against our runs")
        table.insert(0, nodes.title(caption, caption))
        para = nodes.paragraph()
        para += nodes.emphasis(text="Read from results/<scale>/" + slug + ".json. " + "; ".join(notes) + ".")
        return [table, para]

    @staticmethod
    def _build_table(header, rows):
        table = nodes.table(classes=["repro-table"])
        group = nodes.tgroup(cols=len(header))
        table += group
        for _ in header:
            group += nodes.colspec(colwidth=1)
        thead = nodes.thead()
        group += thead
        thead += ReproTable._row(header)
        tbody = nodes.tbody()
        group += tbody
        for r in rows:
            tbody += ReproTable._row(r)
        return table

    @staticmethod
    def _row(cells):
        row = nodes.row()
        for c in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=str(c))
            row += entry
        return row


REPRODUCED, CLOSE = 0.02, 0.10
"""The dashboard's cut-offs: a number within 2 % of the paper's (where the paper gives no error)
is reproduced, within 10 % close; inside the paper's own reported error is reproduced."""


def _status(ours: float, paper: float, error: float | None) -> str:
    """``reproduced``, ``close`` or ``differs`` (see :data:`REPRODUCED`, :data:`CLOSE`)."""
    gap = abs(ours - paper)
    rel = gap / abs(paper) if paper else float("inf")
    if (error is not None and gap <= error) or (error is None and rel <= REPRODUCED):
        return "reproduced"
    return "close" if rel <= CLOSE else "differs"


def _run_text(data: dict) -> str:
    prov = data["provenance"]
    n = len(prov["seeds"])
    commit = (prov.get("commit") or "no commit")[:7] + (" (uncommitted changes)" if prov.get("dirty") else "")
    return (f"{data['scale']}, {prov.get('device')}, {str(prov.get('date'))[:10]}, {commit}, "
            f"{n} seed{'s' if n != 1 else ''}")


class ReproDashboard(SphinxDirective):
    """Every chapter's headline numbers: the paper's beside ours at ``quick`` scale and at the
    largest scale that has the number, with a status and a one-line reason.

    Content lines: ``slug/metric [± paper_error_metric] : reason``. The paper's number (and its
    error) comes from the ``paper`` block of the chapter's largest-scale results file ("not
    read" where the block lacks it but our runs have it; a name in neither is a warning); a
    metric no run has measured reads "not yet run".
    """

    has_content = True
    option_spec = {"digits": directives.positive_int, "caption": directives.unchanged}

    def run(self):
        digits = self.options.get("digits", 3)
        header = ["Chapter", "Quantity", "Paper", "Ours (quick)", "Ours (largest run)", "Largest run",
                  "Status", "Why"]
        rows = []
        for line in self.content:
            if not line.strip():
                continue
            spec, sep, reason = line.partition(" : ")
            slug, slash, rest = spec.strip().partition("/")
            metric, _, error_metric = (part.strip() for part in rest.partition("±"))
            if not sep or not slash or not metric:
                logger.warning(f"repro-dashboard: a row must read 'slug/metric [± error] : reason', got {line!r}",
                               location=self.get_location())
                return []
            files = {}
            for scale in ("quick", "cpu", "paper"):
                try:
                    files[scale] = _load(self.env, slug, scale)
                except FileNotFoundError:
                    continue
                except ValueError as err:
                    logger.warning(f"repro-dashboard {slug}: {err}", location=self.get_location())
                    return []
            if not files:
                rows.append([slug, metric, "", "", "", "", "not yet run", reason.strip()])
                continue
            paper_block = files[list(files)[-1]]["paper"]
            entry = paper_block.get(metric)
            if entry is None and not any(metric in f["metrics"] for f in files.values()):
                logger.warning(f"repro-dashboard: {slug} has no number {metric!r}, the paper's or ours",
                               location=self.get_location())
                return []
            if entry is None:  # ours only: the paper's number could not be read
                entry = {"value": None, "missing": True}
            error = None
            if error_metric:
                err_entry = paper_block.get(error_metric)
                if err_entry is None:
                    logger.warning(f"repro-dashboard: {slug} has no paper number {error_metric!r}",
                                   location=self.get_location())
                    return []
                error = err_entry["value"]
            paper = entry["value"]
            paper_text = ("not read" if entry.get("missing") else "figure only") if paper is None \
                else results.format_number(paper, digits)
            if paper is not None and error is not None:
                paper_text = _with_spread(paper_text, error, digits)
            quick = files.get("quick", {}).get("metrics", {}).get(metric)
            largest = next((files[s] for s in ("paper", "cpu", "quick") if s in files and metric in files[s]["metrics"]),
                           None)
            if largest is None:
                status, ours_text, run_text = "not yet run", "", ""
            else:
                ours = largest["metrics"][metric]
                ours_text, run_text = results.format_number(ours, digits), _run_text(largest)
                status = "no number to compare" if paper is None else _status(ours, paper, error)
            rows.append([slug, metric, paper_text,
                         "not run at this scale" if quick is None else results.format_number(quick, digits),
                         ours_text, run_text, status, reason.strip()])
        table = ReproTable._build_table(header, rows)
        caption = self.options.get("caption", "Every chapter's headline numbers")
        table.insert(0, nodes.title(caption, caption))
        para = nodes.paragraph()
        para += nodes.emphasis(text=(
            f"Status: reproduced when our number lies inside the paper's reported error, or within "
            f"{REPRODUCED:.0%} of the paper's number where it reports none; close within {CLOSE:.0%}; "
            f"differs beyond; not yet run when no run of ours measured it. Read from results/<scale>/<slug>.json."))
        return [table, para]


class BenchAppendix(SphinxDirective):
    """Every benchmark's ratio, its peer and its spread, from ``results/bench/``.

    Content lines: ``slug/metric [~ q25_metric q75_metric] : what it compares``.
    """

    has_content = True
    option_spec = {"digits": directives.positive_int}

    def run(self):
        digits = self.options.get("digits", 3)
        header = ["Benchmark", "Ratio", "Value", "Interquartile range", "Compares", "Run"]
        rows = []
        for line in self.content:
            if not line.strip():
                continue
            spec, sep, what = line.partition(" : ")
            slug, slash, rest = spec.strip().partition("/")
            metric, _, spread = (part.strip() for part in rest.partition("~"))
            try:
                if not sep or not slash or not metric:
                    raise ValueError(f"a row must read 'slug/metric [~ q25 q75] : what', got {line!r}")
                data = _load(self.env, slug, "bench")
                value = results.format_number(results.metric(data, metric), digits)
                iqr = ""
                if spread:
                    lo, hi = spread.split()
                    iqr = (f"{results.format_number(results.metric(data, lo), digits)} – "
                           f"{results.format_number(results.metric(data, hi), digits)}")
            except (ValueError, KeyError, FileNotFoundError) as err:
                logger.warning(f"bench-appendix: {err}", location=self.get_location())
                return []
            rows.append([slug, metric, value, iqr, what.strip(), _run_text(data)])
        return [ReproTable._build_table(header, rows)]


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Sphinx 7.4 lists inline scripts added after ``Builder.init()`` twice (filename None and
    ''), so e.g. sphinx-thebe's ``const THEBE_JS_URL`` is declared twice: a SyntaxError in the
    browser on every page. Keep the first of each."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


class GifStill(ImageConverter):
    """For a builder that cannot show a GIF (the LaTeX of ``make pdf``): the GIF's first frame as
    a PNG, drawn with Pillow (no ImageMagick needed). HTML shows the GIF itself."""

    default_priority = 200
    conversion_rules = [("image/gif", "image/png")]

    def is_available(self) -> bool:
        try:
            import PIL  # noqa: F401
        except ImportError:
            return False
        return True

    def convert(self, _from: str, _to: str) -> bool:
        from PIL import Image

        with Image.open(_from) as im:
            im.seek(0)
            im.convert("RGB").save(_to, format="PNG")
        return True


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.add_post_transform(GifStill)
    app.add_role("result", ResultRole())
    app.add_directive("repro-table", ReproTable)
    app.add_directive("repro-dashboard", ReproDashboard)
    app.add_directive("bench-appendix", BenchAppendix)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
