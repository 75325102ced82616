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

A reference to a missing file or metric is a Sphinx warning, so the strict build (``-W``) fails
rather than print a stale or invented number. Results are read from ``PAPERNOTES_RESULTS`` or
the repository's ``results/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.add_role("result", ResultRole())
    app.add_directive("repro-table", ReproTable)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
