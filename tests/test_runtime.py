import random

import numpy as np
import pytest
import torch

from papernotes_core import runtime


def test_scale_from_env(monkeypatch):
    for s in runtime.SCALES:
        monkeypatch.setenv("PAPERNOTES_SCALE", s)
        assert runtime.get_scale() == s


def test_scale_default_follows_hardware(monkeypatch):
    monkeypatch.delenv("PAPERNOTES_SCALE", raising=False)
    assert runtime.get_scale() == ("paper" if torch.cuda.is_available() else "quick")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_scale() == "paper"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.get_scale() == "quick"


def test_unknown_scale_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PAPERNOTES_SCALE", "fast")
    with pytest.raises(ValueError, match=r"PAPERNOTES_SCALE='fast'.*quick, cpu, paper"):
        runtime.get_scale()
    with pytest.raises(ValueError, match="unknown scale"):
        runtime.check_scale("Quick")
    with pytest.raises(TypeError):
        runtime.check_scale(1)


def test_config_for_calls_the_scale_constructor(monkeypatch):
    class C:
        @classmethod
        def quick(cls):
            return "q"

        @classmethod
        def cpu(cls):
            return "c"

        @classmethod
        def paper(cls):
            return "p"

    assert [runtime.config_for(C, s) for s in runtime.SCALES] == ["q", "c", "p"]
    monkeypatch.setenv("PAPERNOTES_SCALE", "cpu")
    assert runtime.config_for(C) == "c"
    with pytest.raises(ValueError):
        runtime.config_for(C, "huge")


def test_paths_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERNOTES_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "c"))
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path / "d"))
    monkeypatch.delenv("PAPERNOTES_RESULTS_OUT", raising=False)
    assert runtime.results_dir() == tmp_path / "r"
    assert runtime.results_out_dir() == tmp_path / "r"
    assert runtime.checkpoints_dir() == tmp_path / "c"
    assert runtime.data_dir() == tmp_path / "d"
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path / "o"))
    assert runtime.results_out_dir() == tmp_path / "o"
    assert runtime.results_dir() == tmp_path / "r"


def test_default_paths_in_the_checkout(monkeypatch):
    for name in ("PAPERNOTES_RESULTS", "PAPERNOTES_RESULTS_OUT", "PAPERNOTES_CHECKPOINTS", "PAPERNOTES_DATA"):
        monkeypatch.delenv(name, raising=False)
    root = runtime.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert runtime.results_dir() == root / "results"
    assert runtime.results_out_dir() == root / "results"  # in a checkout, runs write where they read
    assert runtime.checkpoints_dir() == root / "checkpoints"
    assert runtime.data_dir().parts[-3:] == (".cache", "papernotes", "data")


def test_device():
    assert runtime.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runtime.device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.device("cuda")


def test_seed_everything_repeats_all_three_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(123)
    a = draw()
    runtime.seed_everything(123)
    assert draw() == a
    runtime.seed_everything(124)
    assert draw() != a


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError)):
        runtime.seed_everything(bad)


def test_set_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("PAPERNOTES_THREADS", "2")
        assert runtime.set_threads() == 2 and torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_study_main_runs_narrows_and_records_the_command(monkeypatch, capsys):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        parts: tuple = ("a", "b")

        @classmethod
        def quick(cls):
            return cls()

        cpu = paper = quick

    calls = []

    def run(config, *, scale, write, command):
        calls.append((config, scale, write, command))
        return {"metrics": {"m": 1.5}}

    monkeypatch.setenv("PAPERNOTES_SCALE", "cpu")
    narrow = ("--parts", {"nargs": "+"}, lambda c, v: dataclasses.replace(c, parts=tuple(v)))
    assert runtime.study_main("toy", Cfg, run, ["--parts", "a", "--no-write"], narrow=narrow) == 0
    printed = capsys.readouterr().out
    assert printed.split() == ["m", "1.50000"]
    assert calls[-1] == (Cfg(parts=("a",)), "cpu", False,
                         "PAPERNOTES_SCALE=cpu python -m papernotes_core.toy --parts a --no-write")
    assert runtime.study_main("toy", Cfg, run, []) == 0
    assert calls[-1][0] == Cfg() and calls[-1][2] is True
    with pytest.raises(SystemExit):
        runtime.study_main("toy", Cfg, run, ["--unknown"])


def test_narrow_to_keeps_the_named_choices_in_their_order():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class C:
        models: tuple = ("a", "b", "c")

    flag, kwargs, apply = runtime.narrow_to("models", ("a", "b", "c"))
    assert flag == "--models" and kwargs == {"nargs": "+"}
    assert apply(C(), ["c", "a"]).models == ("a", "c")
    with pytest.raises(ValueError, match=r"--models takes some of \('a', 'b', 'c'\), got \['z'\]"):
        apply(C(), ["a", "z"])


def test_check_int():
    from papernotes_core.training import check_int

    assert check_int("k", np.int64(3), 1) == 3 and type(check_int("k", np.int64(3), 1)) is int
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        check_int("k", 0, 1)
    for bad in (True, 1.0, "1"):
        with pytest.raises(TypeError, match="k must be an int"):
            check_int("k", bad, 1)
