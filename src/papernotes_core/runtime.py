"""Where a run happens: its scale, its device, its seeds, and where its files go.

Three scales share one code path (DESIGN.md):

* ``quick``: at most 90 s per notebook on 2 CPU cores; CI runs it every time.
* ``cpu``: the longest run worth doing on 2 cores (about an hour); results committed.
* ``paper``: the paper's own settings, for a GPU.

Environment variables:

* ``PAPERNOTES_SCALE``: one of the scales; unset means ``paper`` where CUDA is present and
  ``quick`` elsewhere.
* ``PAPERNOTES_RESULTS``: the folder holding ``<scale>/<slug>.json`` (default: the repository's
  ``results/`` in a checkout; after ``pip install``, the copy of it shipped inside the package,
  ``papernotes_core/_results/``; ``./results`` if there is neither).
* ``PAPERNOTES_RESULTS_OUT``: where runs *write* results (default: ``PAPERNOTES_RESULTS``, else
  the repository's ``results/``, else ``./results`` for an installed package, never the package's
  own folder; ``make test`` points it at a scratch folder so that testing never rewrites the
  committed files).
* ``PAPERNOTES_CHECKPOINTS``: where checkpoints go (in Colab, point it at a Google Drive folder).
* ``PAPERNOTES_DATA``: the data cache (default ``~/.cache/papernotes/data``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

SCALES = ("quick", "cpu", "paper")

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The repository checkout this package runs from, or ``None`` when installed elsewhere."""
    candidate = _PACKAGE_DIR.parent.parent  # src/papernotes_core -> repository
    if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "papernotes_core").is_dir():
        return candidate
    return None


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of :data:`SCALES`, else raise a ``ValueError`` naming them."""
    if not isinstance(scale, str):
        raise TypeError(f"scale must be a str, one of {SCALES}; got {type(scale).__name__}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
    return scale


def get_scale() -> str:
    """The scale this process runs at: ``PAPERNOTES_SCALE`` if set, else by hardware.

    Unset (or empty), it is ``paper`` where CUDA is present and ``quick`` elsewhere. Any other
    value than the three scales is an error, never silently replaced by a default.
    """
    value = os.environ.get("PAPERNOTES_SCALE", "").strip()
    if not value:
        return "paper" if torch.cuda.is_available() else "quick"
    try:
        return check_scale(value)
    except ValueError:
        raise ValueError(
            f"PAPERNOTES_SCALE={value!r} is not a scale: expected one of {', '.join(SCALES)}"
        ) from None


def config_for(config_cls, scale: str | None = None):
    """The chapter config for ``scale`` (default :func:`get_scale`): ``config_cls.<scale>()``."""
    scale = get_scale() if scale is None else check_scale(scale)
    return getattr(config_cls, scale)()


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _package_results() -> Path | None:
    """The results shipped inside an installed package (``papernotes_core/_results/``, copied
    from the repository's ``results/`` when the wheel was built), or ``None`` if there are none
    (an editable install, a source checkout, or a package that is not on disk)."""
    try:
        from importlib.resources import files

        folder = files("papernotes_core") / "_results"
    except Exception:  # no such package on disk (e.g. a broken install): fall back, never fail
        return None
    if isinstance(folder, Path) and folder.is_dir():
        return folder
    return None


def _default_results() -> Path:
    """The repository's ``results/`` in a checkout, else ``./results``."""
    root = repo_root()
    return (root / "results") if root is not None else Path.cwd() / "results"


def results_dir() -> Path:
    """Folder with ``<scale>/<slug>.json``: ``PAPERNOTES_RESULTS``, else the repository's
    ``results/`` (in a checkout), else the results shipped with the installed package, else
    ``./results``."""
    env = _env_path("PAPERNOTES_RESULTS")
    if env is not None:
        return env
    if repo_root() is not None:
        return _default_results()
    shipped = _package_results()
    return shipped if shipped is not None else _default_results()


def results_out_dir() -> Path:
    """Folder runs write results to: ``PAPERNOTES_RESULTS_OUT``, else ``PAPERNOTES_RESULTS``, else
    the repository's ``results/``, else ``./results``; never the installed package's own copy."""
    for name in ("PAPERNOTES_RESULTS_OUT", "PAPERNOTES_RESULTS"):
        env = _env_path(name)
        if env is not None:
            return env
    return _default_results()


def checkpoints_dir() -> Path:
    """Folder for checkpoints: ``PAPERNOTES_CHECKPOINTS``, else ``checkpoints/`` beside results."""
    env = _env_path("PAPERNOTES_CHECKPOINTS")
    if env is not None:
        return env
    root = repo_root()
    return (root / "checkpoints") if root is not None else Path.cwd() / "checkpoints"


def data_dir() -> Path:
    """The data cache: ``PAPERNOTES_DATA``, else ``~/.cache/papernotes/data``."""
    env = _env_path("PAPERNOTES_DATA")
    return env if env is not None else Path.home() / ".cache" / "papernotes" / "data"


def device(name: str | None = None) -> torch.device:
    """The device to compute on: CUDA when present, else the CPU.

    ``name`` forces one (``"cpu"``, ``"cuda"``, ``"cuda:1"``); asking for CUDA where there is
    none is an error rather than a silent fall-back to the CPU.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: ``PAPERNOTES_THREADS`` or leave as is); return it."""
    if n is None:
        env = os.environ.get("PAPERNOTES_THREADS", "").strip()
        if not env:
            return torch.get_num_threads()
        n = int(env)
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


def narrow_to(field: str, choices) -> tuple:
    """The ``narrow`` of :func:`study_main` that most studies share: ``--<field> NAME ...`` keeps
    those of ``choices`` (in the order of ``choices``) in ``config.<field>``, e.g.
    ``narrow_to("models", MODELS)`` for ``--models dcgan gran_t3``. A name not in ``choices`` is
    a ``ValueError`` naming them."""
    import dataclasses

    choices = tuple(choices)

    def apply(config, names):
        unknown = sorted(set(names) - set(choices))
        if unknown:
            raise ValueError(f"--{field} takes some of {choices}, got {unknown}")
        return dataclasses.replace(config, **{field: tuple(c for c in choices if c in names)})

    return (f"--{field}", {"nargs": "+"}, apply)


def study_main(slug: str, config_cls, run, argv: list[str] | None = None, *, narrow=None,
               description: str | None = None) -> int:
    """The command line every chapter shares: ``python -m papernotes_core.<slug> [...] [--no-write]``.

    Runs ``run(config, scale=..., write=..., command=...)`` at :func:`get_scale` with
    ``config_cls.<scale>()`` and prints the metrics. ``narrow`` is ``(flag, argparse keyword
    arguments, apply)``: an option that narrows the study, ``apply(config, values) -> config``
    (e.g. ``--datasets`` to split a study over processes that share checkpoints). ``--no-write``
    is for such partial runs, so they don't overwrite the results file. The recorded command is
    the one that reproduces the run.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog=f"python -m papernotes_core.{slug}", description=description)
    if narrow is not None:
        flag, kwargs, _ = narrow
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--no-write", action="store_true", help="don't write the results file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    scale = get_scale()
    config = config_for(config_cls, scale)
    if narrow is not None:
        values = getattr(args, narrow[0].lstrip("-").replace("-", "_"))
        if values:
            config = narrow[2](config, values)
    command = " ".join([f"PAPERNOTES_SCALE={scale} python -m papernotes_core.{slug}", *argv])
    out = run(config, scale=scale, write=not args.no_write, command=command)
    for name in sorted(out["metrics"]):
        print(f"{name:40s} {out['metrics'][name]:.5f}")
    return 0
