"""Results files: what a run measured, written once, read by the notebooks and the book's pages.

Every number the book states about our runs comes from ``results/<scale>/<slug>.json``, written
only by :func:`write`. The schema (DESIGN.md)::

    {"slug": "elu", "scale": "cpu",
     "metrics":    {"train_loss.elu": 0.0123, ...},       # flat, dotted names fixed by the issue
     "curves":     {"train_loss.elu": [[x, y], ...]},      # named series of (x, y) points
     "paper":      {"train_loss.elu": {"value": null, "source": "Fig. 2b", "status": "V"}},
     "provenance": {"commit": "...", "dirty": false, "command": "...", "config": {...},
                    "seeds": [0, 1, 2], "torch": "2.13.0", "device": "cpu",
                    "wall_s": 812.0, "date": "2026-11-25T14:00:00+00:00"}}

``paper`` entries say what the paper reports for a metric: ``value`` (a number, or ``null``
where the paper gives the result only as a figure), ``source`` (table or figure) and ``status``
(``V`` checked in the paper, ``V2`` checked only in a second-hand copy, ``U`` unverified).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from . import runtime

PAPER_STATUSES = ("V", "V2", "U")
#: Folders of ``results/``: the three scales, ``bench`` for ``make bench``'s ratio benchmarks, and
#: ``spread`` for ``make spread``: each quick-scale claim measured over seeds and CPU kernel paths,
#: trained and untrained, from which the notebooks' tolerances are chosen.
KINDS = (*runtime.SCALES, "bench", "spread")
_TOP_KEYS = ("slug", "scale", "metrics", "curves", "paper", "provenance")
_PROVENANCE_KEYS = ("commit", "dirty", "command", "config", "seeds", "torch", "device", "wall_s", "date")


def _git(*args: str) -> str | None:
    root = runtime.repo_root()
    if root is None or not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def code_state() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout now: call it when a run *starts*, so that a long run
    records the code it ran, not whatever was committed by the time it ended.

    ``dirty`` ignores ``results/``, which runs rewrite. Both are ``None`` outside a git checkout
    (e.g. in Colab after ``pip install``).
    """
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", ".", ":(exclude)results")
    return (commit.strip() if commit else None), (bool(status.strip()) if status is not None else None)


def provenance(
    config: Any,
    seeds: list[int] | tuple[int, ...],
    *,
    wall_s: float,
    device: str | torch.device = "cpu",
    command: str | None = None,
    code: tuple[str | None, bool | None] | None = None,
) -> dict:
    """The ``provenance`` block of a results file.

    ``config`` is a dataclass (stored with :func:`dataclasses.asdict`) or a mapping; ``code`` is
    :func:`code_state` taken when the run started (default: taken now).
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif not isinstance(config, Mapping):
        raise TypeError(f"config must be a dataclass instance or a mapping, got {type(config).__name__}")
    seeds = [int(s) for s in seeds]
    commit, dirty = code if code is not None else code_state()
    return {
        "commit": commit,
        "dirty": dirty,
        "command": command if command is not None else " ".join(shlex.quote(a) for a in sys.argv),
        "config": _jsonable(dict(config)),
        "seeds": seeds,
        "torch": torch.__version__.split("+")[0],
        "device": str(device),
        "wall_s": round(float(wall_s), 1),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }



@dataclasses.dataclass
class StudyRun:
    """What a chapter's ``run`` needs to begin and to end: the scale, the config, the device,
    the start time and the code state at the start (see :func:`start_study`)."""

    scale: str
    config: Any
    device: Any
    t0: float
    code: tuple[str | None, bool | None]

    def finish(self, slug: str, metrics: dict, curves: dict, paper: dict, *, seeds, command: str | None = None,
               write: bool = True, results_dir: str | Path | None = None, carried: Mapping | None = None) -> dict:
        """Validate the results of this run (provenance from the start) and, with ``write``, write
        them; return the validated mapping. ``carried``: the record :func:`carry_over` returned
        when some of ``metrics``/``curves`` come from an earlier run (kept as
        ``provenance.carried_over``)."""
        import time

        prov = provenance(self.config, list(seeds), wall_s=time.perf_counter() - self.t0, device=self.device,
                          code=self.code, command=command)
        if carried:
            prov["carried_over"] = dict(carried)
        data = validate({"slug": slug, "scale": self.scale, "metrics": metrics, "curves": curves, "paper": paper,
                         "provenance": prov})
        if write:
            _write(data, results_dir)
        return data


def start_study(config_cls, config=None, scale: str | None = None, device=None, models=None) -> StudyRun:
    """The common start of every chapter's ``run``: the scale (``PAPERNOTES_SCALE`` unless
    given), the config (``config_cls.<scale>()`` unless given), torch's threads
    (``config.threads``), the device, the start time and :func:`code_state`. ``models``, when
    given, must be a dict (``run`` fills it with the trained models)."""
    import time

    if models is not None and not isinstance(models, dict):
        raise TypeError(f"models must be a dict to fill with the trained models, got {type(models).__name__}")
    scale = runtime.get_scale() if scale is None else runtime.check_scale(scale)
    config = config or runtime.config_for(config_cls, scale)
    if getattr(config, "threads", None):
        runtime.set_threads(config.threads)
    return StudyRun(scale, config, device or runtime.device(), time.perf_counter(), code_state())


def matches_prefix(name: str, prefix: str) -> bool:
    """Whether the metric or curve ``name`` belongs to the task or part ``prefix``: the name starts
    with it followed by ``_`` or ``.`` (or is it), or one of its dot-separated parts is it. So
    ``"adding_t5"`` matches ``adding_t5_test_mse.irnn`` but not ``adding_t50_test_mse.irnn``, and
    ``"nz3"`` matches ``test_elbo.nz3`` but not ``test_elbo.nz30``."""
    return (name == prefix or name.startswith(prefix + "_") or name.startswith(prefix + ".")
            or prefix in name.split("."))


def carry_over(slug: str, scale: str, prefixes, results_dir: str | Path | None = None) -> tuple[dict, dict, dict]:
    """The metrics and curves of the existing ``<scale>/<slug>.json`` whose names contain one of
    ``prefixes`` (:func:`matches_prefix`), for a run that re-measures only part
    of a study whose other parts are expensive and unchanged.

    Returns ``(metrics, curves, record)``; ``record`` (``commit``, ``date``, ``config`` of the
    earlier run and the ``metrics``/``curves`` names taken) goes to :meth:`StudyRun.finish` as
    ``carried`` and ends up in ``provenance.carried_over``, so a page can say which numbers are
    from which run. A prefix that matches nothing is an error (a typo would silently drop a task).
    """
    prefixes = tuple(prefixes)
    if not prefixes or not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError(f"prefixes must be a non-empty sequence of non-empty strings, got {prefixes!r}")
    old = read(slug, scale, results_dir)

    metrics = {k: v for k, v in old["metrics"].items() if any(matches_prefix(k, p) for p in prefixes)}
    curves = {k: v for k, v in old["curves"].items() if any(matches_prefix(k, p) for p in prefixes)}
    unmatched = [p for p in prefixes if not any(matches_prefix(k, p) for k in (*metrics, *curves))]
    if unmatched:
        raise ValueError(f"carry_over: {unmatched} match no metric or curve of {slug}/{scale}")
    prov = old["provenance"]
    earlier = prov.get("carried_over")
    record = {"commit": prov.get("commit"), "date": prov.get("date"), "config": prov.get("config"),
              "prefixes": list(prefixes), "metrics": sorted(metrics), "curves": sorted(curves)}
    if earlier:  # that run had itself carried some numbers over: keep its record too
        record["earlier"] = earlier
    return metrics, curves, record


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value.item() if hasattr(value, "item") else value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def validate(data: Mapping) -> dict:
    """Check ``data`` against the schema; return a normalised copy (floats, lists), or raise.

    Raises ``ValueError`` (or ``TypeError``) naming the field that is wrong and what was
    expected, so that nothing malformed is ever written or read.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a results file holds a JSON object, got {type(data).__name__}")
    missing = [k for k in _TOP_KEYS if k not in data]
    if missing:
        raise ValueError(f"results are missing the fields {missing}; expected {list(_TOP_KEYS)}")
    extra = sorted(set(data) - set(_TOP_KEYS))
    if extra:
        raise ValueError(f"results have unknown fields {extra}; expected only {list(_TOP_KEYS)}")
    slug = data["slug"]
    if not isinstance(slug, str) or not slug.isidentifier():
        raise ValueError(f"slug must be a Python-identifier string like 'elu', got {slug!r}")
    scale = _check_kind(data["scale"])

    metrics = {}
    if not isinstance(data["metrics"], Mapping) or not data["metrics"]:
        raise ValueError("metrics must be a non-empty mapping of name -> number")
    for name, value in data["metrics"].items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings, got {name!r}")
        metrics[name] = _finite_number(f"metrics[{name!r}]", value)

    curves = {}
    if not isinstance(data["curves"], Mapping):
        raise TypeError("curves must be a mapping of name -> [[x, y], ...]")
    for name, points in data["curves"].items():
        if not isinstance(points, (list, tuple)):
            raise TypeError(f"curves[{name!r}] must be a list of [x, y] pairs")
        norm = []
        for i, p in enumerate(points):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ValueError(f"curves[{name!r}][{i}] must be an [x, y] pair, got {p!r}")
            norm.append([_finite_number(f"curves[{name!r}][{i}][0]", p[0]),
                         _finite_number(f"curves[{name!r}][{i}][1]", p[1])])
        curves[name] = norm

    paper = {}
    if not isinstance(data["paper"], Mapping):
        raise TypeError("paper must be a mapping of metric name -> {value, source, status}")
    for name, entry in data["paper"].items():
        if not isinstance(entry, Mapping) or set(entry) != {"value", "source", "status"}:
            raise ValueError(f"paper[{name!r}] must have exactly the keys value, source, status; got {entry!r}")
        if entry["status"] not in PAPER_STATUSES:
            raise ValueError(f"paper[{name!r}].status must be one of {PAPER_STATUSES}, got {entry['status']!r}")
        if not isinstance(entry["source"], str) or not entry["source"]:
            raise ValueError(f"paper[{name!r}].source must name a table or figure, got {entry['source']!r}")
        value = entry["value"]
        value = None if value is None else _finite_number(f"paper[{name!r}].value", value)
        paper[name] = {"value": value, "source": entry["source"], "status": entry["status"]}

    prov = data["provenance"]
    if not isinstance(prov, Mapping):
        raise TypeError("provenance must be a mapping")
    missing = [k for k in _PROVENANCE_KEYS if k not in prov]
    if missing:
        raise ValueError(f"provenance is missing {missing}; build it with results.provenance()")
    if not isinstance(prov["seeds"], list) or not prov["seeds"]:
        raise ValueError(f"provenance.seeds must be a non-empty list, got {prov['seeds']!r}")
    return {"slug": slug, "scale": scale, "metrics": metrics, "curves": curves,
            "paper": paper, "provenance": dict(prov)}


def _check_kind(scale: str) -> str:
    if scale in ("bench", "spread"):
        return scale
    try:
        return runtime.check_scale(scale)
    except ValueError:
        raise ValueError(f"unknown scale {scale!r}: expected one of {', '.join(KINDS)}") from None


def path_for(slug: str, scale: str, results_dir: str | Path | None = None) -> Path:
    """``<results_dir>/<scale>/<slug>.json`` (``results_dir`` defaults to :func:`runtime.results_dir`)."""
    _check_kind(scale)
    base = Path(results_dir) if results_dir is not None else runtime.results_dir()
    return base / scale / f"{slug}.json"


def write(data: Mapping, results_dir: str | Path | None = None) -> Path:
    """Validate ``data`` and write it atomically to its results file; return the path.

    ``results_dir`` defaults to :func:`runtime.results_out_dir` (normally the same folder
    :func:`read` reads from).

    The JSON goes to a temporary file in the same folder first and is renamed into place, so a
    reader never sees a half-written file and a failed run leaves the previous one intact.
    """
    clean = validate(data)
    path = path_for(clean["slug"], clean["scale"], results_dir if results_dir is not None else runtime.results_out_dir())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(clean, f, indent=1, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read(slug: str, scale: str, results_dir: str | Path | None = None) -> dict:
    """Read and validate ``<scale>/<slug>.json``.

    A missing file is a ``FileNotFoundError`` that says which run writes it.
    """
    path = path_for(slug, scale, results_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"no results at {path}: run `PAPERNOTES_SCALE={scale} python -m papernotes_core.{slug}` "
            f"(or the chapter's notebook at that scale) to write them"
        )
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        return validate(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} does not follow the results schema: {err}") from None


def metric(data: Mapping, name: str) -> float:
    """One metric of a results mapping, with an error that lists the names there are.

    ``config.<field>`` reads a field of the run's configuration (``provenance.config``) instead,
    and ``config.<field>.<subfield>`` a field of a nested configuration.
    """
    if name.startswith("config."):
        value = data["provenance"]["config"]
        for field in name[len("config."):].split("."):
            if not isinstance(value, Mapping) or field not in value:
                have = ", ".join(sorted(value)) if isinstance(value, Mapping) else type(value).__name__
                raise KeyError(f"{data['slug']} ({data['scale']}) config has no field {field!r} in {name!r}; "
                               f"it has: {have}")
            value = value[field]
        return value
    try:
        return data["metrics"][name]
    except KeyError:
        names = ", ".join(sorted(data["metrics"]))
        raise KeyError(f"{data['slug']} ({data['scale']}) has no metric {name!r}; it has: {names}") from None


@dataclasses.dataclass(frozen=True)
class Spread:
    """One quick-scale claim as ``make spread`` measured it (``results/spread/<slug>.json``).

    ``worst_trained``: the worst value of the trained model over every seed and CPU kernel path;
    ``best_untrained``: the best value of the same model untrained, measured the same way;
    ``better``: ``"higher"`` or ``"lower"``; ``runs``: how many (seed, path) runs;
    ``seeds`` and ``paths``: which.
    """

    claim: str
    worst_trained: float
    best_untrained: float
    better: str
    runs: int
    seeds: tuple[int, ...]
    paths: tuple[str, ...]

    def separates(self, threshold: float) -> bool:
        """Whether ``threshold`` lies strictly between the untrained and the worst trained value,
        so that every measured trained run passes it and no untrained one does."""
        if self.better == "higher":
            return self.best_untrained < threshold < self.worst_trained
        return self.worst_trained < threshold < self.best_untrained

    def passes(self, value: float, threshold: float) -> bool:
        """Whether ``value`` is on the trained side of ``threshold``."""
        return value > threshold if self.better == "higher" else value < threshold

    def describe(self, threshold: float, digits: int = 3) -> str:
        """One short line for a notebook: the threshold between the two measured values."""
        return (f"bar {format_number(threshold, digits)}: trained, worst "
                f"{format_number(self.worst_trained, digits)}; untrained, best "
                f"{format_number(self.best_untrained, digits)} ({self.runs} runs)")

    def runs_text(self) -> str:
        """What the runs were: ``"10 runs: seeds 0-4 × CPU kernel paths default, native"``."""
        seeds = (f"{self.seeds[0]}-{self.seeds[-1]}" if self.seeds == tuple(range(self.seeds[0], self.seeds[-1] + 1))
                 else ", ".join(map(str, self.seeds)))
        return f"{self.runs} runs: seeds {seeds} × CPU kernel paths {', '.join(self.paths)}"


def spread(data: Mapping, claim: str) -> Spread:
    """The measured spread of ``claim`` from a ``spread`` results mapping (see :class:`Spread`)."""
    if data.get("scale") != "spread":
        raise ValueError(f"expected a results mapping of scale 'spread', got scale {data.get('scale')!r}")
    claims = data["provenance"]["config"].get("claims", {})
    if claim not in claims:
        raise KeyError(f"{data['slug']} (spread) has no claim {claim!r}; it has: {', '.join(sorted(claims))}")
    better = claims[claim]
    if better not in ("higher", "lower"):
        raise ValueError(f"claim {claim!r}: 'better' must be 'higher' or 'lower', got {better!r}")
    prefix = f"{claim}.trained."
    runs = [k[len(prefix):] for k in data["metrics"] if k.startswith(prefix)]
    paths = tuple(sorted({r.rpartition(".seed")[0] for r in runs}))
    seeds = tuple(sorted({int(r.rpartition(".seed")[2]) for r in runs}))
    return Spread(claim, metric(data, f"{claim}.worst_trained"), metric(data, f"{claim}.best_untrained"), better,
                  len(runs), seeds, paths)


def format_number(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures (plain notation when sensible); ``—`` for None."""
    if value is None:
        return "—"
    if not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits must be a positive int, got {digits!r}")
    value = float(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < 6:
        decimals = max(digits - 1 - magnitude, 0)
        return f"{value:,.{decimals}f}"
    return f"{value:.{digits - 1}e}"


_write = write  # StudyRun.finish's ``write`` argument shadows the function
