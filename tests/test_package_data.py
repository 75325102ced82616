"""The committed results ship inside the package (``papernotes_core/_results/``), so that a
notebook run after a plain ``pip install .`` finds them; runs never write there."""

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from papernotes_core import results, runtime

ROOT = runtime.repo_root()
PACKAGE_PREFIX = "papernotes_core/_results/"


def _clear_env(monkeypatch):
    for name in ("PAPERNOTES_RESULTS", "PAPERNOTES_RESULTS_OUT"):
        monkeypatch.delenv(name, raising=False)


def _installed(monkeypatch, tmp_path, shipped=True):
    """Pretend the package is installed (not a checkout), with results shipped at a temp folder
    (or none); run from a fresh working folder. Return (shipped folder, working folder)."""
    _clear_env(monkeypatch)
    folder = tmp_path / "site-packages" / "papernotes_core" / "_results"
    (folder / "cpu").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(runtime, "repo_root", lambda: None)
    monkeypatch.setattr(runtime, "_package_results", lambda: folder if shipped else None)
    return folder, work


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _results_files(base: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``base`` that setup.py ships
    (hidden files and folders, e.g. ``.ipynb_checkpoints``, and ``__pycache__`` are not)."""
    out = {}
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            out[rel.as_posix()] = _sha(path.read_bytes())
    return out


def _wheel_results(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n[len(PACKAGE_PREFIX):]: _sha(zf.read(n)) for n in zf.namelist()
                if n.startswith(PACKAGE_PREFIX) and not n.endswith("/")}


def _assert_no_strays(names):
    for name in names:
        assert not name.endswith(".ipynb"), name
        assert not name.startswith(("tests/", "notebooks/", "results/")), name
        assert not any(p.startswith(".") for p in name.split("/")), name  # .ipynb_checkpoints, .tmp
        if name.startswith(PACKAGE_PREFIX):
            assert "checkpoint" not in name.lower(), name
        assert name.startswith(("papernotes_core/", "papernotes_core-")), name


# --- resolution order (fast) ---------------------------------------------------------------


def test_results_dir_order_installed(monkeypatch, tmp_path):
    shipped, work = _installed(monkeypatch, tmp_path)
    assert runtime.results_dir() == shipped  # installed: the package's own copy
    monkeypatch.setenv("PAPERNOTES_RESULTS", str(tmp_path / "mine"))
    assert runtime.results_dir() == tmp_path / "mine"  # the environment wins
    monkeypatch.delenv("PAPERNOTES_RESULTS")
    monkeypatch.setattr(runtime, "_package_results", lambda: None)
    assert runtime.results_dir() == work / "results"  # no package data: ./results, no error


def test_checkout_wins_over_package_data(monkeypatch, tmp_path):
    _clear_env(monkeypatch)
    monkeypatch.setattr(runtime, "_package_results", lambda: tmp_path)
    assert runtime.results_dir() == ROOT / "results"
    assert runtime.results_out_dir() == ROOT / "results"


def test_read_finds_shipped_results_from_any_folder(monkeypatch, tmp_path):
    shipped, work = _installed(monkeypatch, tmp_path)
    (shipped / "cpu" / "vae.json").write_bytes((ROOT / "results" / "cpu" / "vae.json").read_bytes())
    assert results.path_for("vae", "cpu") == shipped / "cpu" / "vae.json"
    assert results.read("vae", "cpu")["slug"] == "vae"


def test_results_out_dir_never_the_package_data(monkeypatch, tmp_path):
    shipped, work = _installed(monkeypatch, tmp_path)
    assert runtime.results_out_dir() == work / "results"
    monkeypatch.setenv("PAPERNOTES_RESULTS", str(tmp_path / "mine"))
    assert runtime.results_out_dir() == tmp_path / "mine"
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path / "out"))
    assert runtime.results_out_dir() == tmp_path / "out"
    assert runtime.results_dir() == tmp_path / "mine"
    for name in ("PAPERNOTES_RESULTS", "PAPERNOTES_RESULTS_OUT"):
        monkeypatch.delenv(name)
    # a run's write lands in ./results; the shipped folder is left as it was
    data = {"slug": "toy", "scale": "quick", "metrics": {"m": 1.0}, "curves": {}, "paper": {},
            "provenance": results.provenance({}, [0], wall_s=1.0, command="pytest")}
    assert results.write(data) == work / "results" / "quick" / "toy.json"
    assert [p.name for p in shipped.rglob("*")] == ["cpu"]


def test_package_results_lookup(monkeypatch, tmp_path):
    import importlib.resources

    package = tmp_path / "papernotes_core"
    package.mkdir()
    monkeypatch.setattr(importlib.resources, "files", lambda name: package)
    assert runtime._package_results() is None  # no _results folder: none
    (package / "_results").mkdir()
    assert runtime._package_results() == package / "_results"
    assert isinstance(runtime._package_results(), Path)

    def broken(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", broken)
    assert runtime._package_results() is None


# --- the built wheel and sdist (slow) ------------------------------------------------------


def _pip_wheel(source: str, out: Path, build_base: Path) -> Path:
    # build/ goes to tmp (not the checkout) through distutils' DIST_EXTRA_CONFIG.
    cfg = out.parent / f"{out.name}.cfg"
    cfg.write_text(f"[build]\nbuild_base = {build_base}\n")
    env = {**os.environ, "DIST_EXTRA_CONFIG": str(cfg), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), source], check=True, env=env, timeout=120)
    (wheel,) = out.glob("papernotes_core-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_ships_every_results_file(tmp_path):
    expected = _results_files(ROOT / "results")
    assert "cpu/vae.json" in expected and "cpu/gan_samples.npz" in expected
    wheel = _pip_wheel(str(ROOT), tmp_path / "dist", tmp_path / "build")
    assert _wheel_results(wheel) == expected  # every file, identical bytes, nothing else
    with zipfile.ZipFile(wheel) as zf:
        _assert_no_strays(zf.namelist())

    # installed from the wheel and run from another folder, the package reads its own copy
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERNOTES_RESULTS")}
    env["PYTHONPATH"] = str(site)
    code = ("import papernotes_core as p; from papernotes_core import results, runtime; "
            "print(p.__file__); print(runtime.results_dir()); print(runtime.results_out_dir()); "
            "print(results.read('vae', 'cpu')['slug'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split("\n")
    assert Path(out[0]).resolve().is_relative_to(site.resolve())
    assert Path(out[1]).resolve() == (site / "papernotes_core" / "_results").resolve()
    assert Path(out[2]).resolve() == (work / "results").resolve()
    assert out[3] == "vae"


@pytest.mark.slow
def test_sdist_and_wheels_ship_new_results_but_no_strays(tmp_path):
    # a copy of the build inputs, with a new results folder and things that must not ship
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        (tree / name).write_bytes((ROOT / name).read_bytes())
    import shutil

    skip = shutil.ignore_patterns("*.egg-info", "__pycache__", "_results")
    shutil.copytree(ROOT / "src", tree / "src", ignore=skip)
    shutil.copytree(ROOT / "results", tree / "results")
    (tree / "results" / "spread").mkdir(exist_ok=True)
    (tree / "results" / "spread" / "zz_new.json").write_text('{"new": 1}\n')
    (tree / "results" / "cpu" / ".ipynb_checkpoints").mkdir(exist_ok=True)
    (tree / "results" / "cpu" / ".ipynb_checkpoints" / "vae-checkpoint.json").write_text("{}")
    (tree / "results" / "cpu" / ".vae.json.abc.tmp").write_text("{")
    (tree / "tests").mkdir()
    (tree / "tests" / "test_x.py").write_text("")
    (tree / "notebooks").mkdir()
    (tree / "notebooks" / "x.ipynb").write_text("{}")
    expected = _results_files(tree / "results")
    assert "spread/zz_new.json" in expected and not any("checkpoint" in k for k in expected)

    dist = tmp_path / "sdist"
    subprocess.run([sys.executable, "-c", "import sys, setuptools.build_meta as b; b.build_sdist(sys.argv[1])",
                    str(dist)], cwd=tree, check=True, capture_output=True, timeout=120)
    (sdist,) = dist.glob("papernotes_core-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = [m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()]
    assert {n[len("results/"):] for n in names if n.startswith("results/")} == set(expected)
    assert "setup.py" in names and "MANIFEST.in" in names

    # the wheel from the sdist, and the wheel straight from the tree (which has the strays)
    for source, name in ((sdist, "from-sdist"), (tree, "from-tree")):
        wheel = _pip_wheel(str(source), tmp_path / name, tmp_path / f"build-{name}")
        assert _wheel_results(wheel) == expected, name
        with zipfile.ZipFile(wheel) as zf:
            _assert_no_strays(zf.namelist())
