import dataclasses
import json
import math

import pytest

from papernotes_core import results


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    sizes: tuple = (1, 2)


def make(**over):
    data = {
        "slug": "toy", "scale": "quick",
        "metrics": {"loss.a": 0.5, "loss_sd.a": 0.01},
        "curves": {"loss.a": [[0, 1.0], [1, 0.5]]},
        "paper": {"loss.a": {"value": 0.4, "source": "Table 1", "status": "V"}},
        "provenance": results.provenance(Cfg(), [0], wall_s=1.23, device="cpu", command="pytest"),
    }
    data.update(over)
    return data


def test_provenance_fields():
    p = results.provenance(Cfg(), (0, 1, 2), wall_s=3.14159, device="cpu", command="x")
    assert p["config"] == {"lr": 0.1, "sizes": [1, 2]}
    assert p["seeds"] == [0, 1, 2] and p["wall_s"] == 3.1 and p["command"] == "x"
    assert set(p) >= {"commit", "dirty", "torch", "device", "date"}
    # from a checkout, the commit is a 40-hex string (or None before the first commit)
    assert p["commit"] is None or len(p["commit"]) == 40
    with pytest.raises(TypeError):
        results.provenance(object(), [0], wall_s=1)


def test_write_read_round_trip_and_atomic(tmp_path):
    path = results.write(make(), tmp_path)
    assert path == tmp_path / "quick" / "toy.json"
    back = results.read("toy", "quick", tmp_path)
    assert back["metrics"] == {"loss.a": 0.5, "loss_sd.a": 0.01}
    assert back["curves"]["loss.a"] == [[0.0, 1.0], [1.0, 0.5]]
    assert [p.name for p in path.parent.iterdir()] == ["toy.json"]  # no temp file left
    assert results.metric(back, "loss.a") == 0.5
    with pytest.raises(KeyError, match="has no metric 'nope'; it has: loss.a, loss_sd.a"):
        results.metric(back, "nope")


def test_write_goes_to_results_out_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_RESULTS", str(tmp_path / "read"))
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path / "out"))
    assert results.write(make()) == tmp_path / "out" / "quick" / "toy.json"


@pytest.mark.parametrize("bad, match", [
    ({"scale": "huge"}, "unknown scale"),
    ({"slug": "not a slug"}, "slug"),
    ({"metrics": {"a": math.nan}}, "finite"),
    ({"metrics": {}}, "non-empty"),
    ({"metrics": {"a": "1"}}, "number"),
    ({"curves": {"c": [[1, 2, 3]]}}, r"\[x, y\] pair"),
    ({"paper": {"a": {"value": 1, "source": "T1", "status": "maybe"}}}, "status"),
    ({"paper": {"a": {"value": 1}}}, "exactly the keys"),
])
def test_bad_results_are_rejected_and_nothing_is_written(tmp_path, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        results.write(make(**bad), tmp_path)
    assert not (tmp_path / "quick").exists() or not any((tmp_path / "quick").iterdir())


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = results.write(make(), tmp_path)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(results.json, "dump", boom)
    with pytest.raises(OSError):
        results.write(make(metrics={"loss.a": 9.0}), tmp_path)
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["toy.json"]


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="PAPERNOTES_SCALE=cpu python -m papernotes_core.toy"):
        results.read("toy", "cpu", tmp_path)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "toy.json").write_text(json.dumps({"slug": "toy"}))
    with pytest.raises(ValueError, match="does not follow the results schema"):
        results.read("toy", "cpu", tmp_path)


@pytest.mark.parametrize("value, digits, text", [
    (0.0123456, 3, "0.0123"), (123.456, 3, "123"), (-97.149, 3, "-97.1"), (1234567.0, 3, "1.23e+06"),
    (0.5, 2, "0.50"), (None, 3, "—"), (0, 3, "0"), (12345.6, 3, "12,346"),
])
def test_format_number(value, digits, text):
    assert results.format_number(value, digits) == text


def test_format_number_rejects_bad_digits():
    with pytest.raises(ValueError):
        results.format_number(1.0, 0)


def test_bench_kind_and_config_lookup(tmp_path):
    path = results.write(make(scale="bench", slug="toy_bench"), tmp_path)
    assert path == tmp_path / "bench" / "toy_bench.json"
    data = results.read("toy_bench", "bench", tmp_path)
    assert results.metric(data, "config.lr") == 0.1
    with pytest.raises(KeyError, match="config has no field 'nope'"):
        results.metric(data, "config.nope")
    nested = make(provenance=results.provenance({"agent": {"steps": 40, "lr": 0.5}}, [0], wall_s=1, command="x"))
    assert results.metric(nested, "config.agent.steps") == 40
    with pytest.raises(KeyError, match="no field 'nope' in 'config.agent.nope'.*it has: lr, steps"):
        results.metric(nested, "config.agent.nope")
    with pytest.raises(KeyError, match="no field 'x'"):
        results.metric(nested, "config.agent.steps.x")


def test_code_state_is_recorded_as_given():
    commit, dirty = results.code_state()
    assert commit is None or len(commit) == 40
    p = results.provenance({}, [0], wall_s=0, code=("abc", False))
    assert p["commit"] == "abc" and p["dirty"] is False


def test_start_study_and_finish(tmp_path, monkeypatch):
    import dataclasses as dc

    @dc.dataclass(frozen=True)
    class Cfg:
        n: int = 1
        threads: int | None = None

        @classmethod
        def quick(cls):
            return cls(n=2)

        @classmethod
        def cpu(cls):
            return cls(n=3)

        @classmethod
        def paper(cls):
            return cls(n=4)

    monkeypatch.setenv("PAPERNOTES_SCALE", "cpu")
    study = results.start_study(Cfg)
    assert study.scale == "cpu" and study.config == Cfg(n=3) and study.t0 > 0
    assert results.start_study(Cfg, scale="quick").config.n == 2
    assert results.start_study(Cfg, Cfg(n=9), scale="paper").config.n == 9
    with pytest.raises(TypeError, match="models must be a dict"):
        results.start_study(Cfg, models=[])
    with pytest.raises(ValueError):
        results.start_study(Cfg, scale="huge")
    data = study.finish("toy", {"m": 1.5}, {}, {}, seeds=[0], command="c", results_dir=tmp_path)
    back = results.read("toy", "cpu", tmp_path)
    assert back == data and back["provenance"]["config"] == {"n": 3, "threads": None}
    assert back["provenance"]["command"] == "c" and back["provenance"]["commit"] == study.code[0]
    assert study.finish("toy2", {"m": 1.0}, {}, {}, seeds=[0], write=False, results_dir=tmp_path)["slug"] == "toy2"
    assert not (tmp_path / "cpu" / "toy2.json").exists()


def _spread_file(tmp_path, better="higher"):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("spread_tool", Path(__file__).parent.parent / "tools" / "spread.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.CLAIMS["toy"] = {"score": better}
    runs = {("native", 0): {"claims": {"score": [0.9, 0.1]}}, ("native", 1): {"claims": {"score": [0.7, 0.3]}},
            ("default", 0): {"claims": {"score": [0.8, 0.2]}}, ("default", 1): {"claims": {"score": [0.95, 0.05]}}}
    metrics = tool.summarise("toy", runs)
    prov = results.provenance({"claims": {"score": better}}, [0, 1], wall_s=1.0, command="pytest")
    path = results.write({"slug": "toy", "scale": "spread", "metrics": metrics, "curves": {}, "paper": {},
                          "provenance": prov}, tmp_path)
    return results.read("toy", "spread", tmp_path), path


def test_spread_summary_takes_the_worst_trained_and_the_best_untrained(tmp_path):
    data, path = _spread_file(tmp_path, "higher")
    assert path == tmp_path / "spread" / "toy.json"
    s = results.spread(data, "score")
    assert (s.worst_trained, s.best_untrained, s.runs) == (0.7, 0.3, 4)
    assert s.seeds == (0, 1) and s.paths == ("default", "native")
    assert s.separates(0.5) and not s.separates(0.75) and not s.separates(0.2)
    assert s.passes(0.6, 0.5) and not s.passes(0.4, 0.5)
    assert s.describe(0.5) == "bar 0.500: trained, worst 0.700; untrained, best 0.300 (4 runs)"
    assert s.runs_text() == "4 runs: seeds 0-1 × CPU kernel paths default, native"
    low, _ = _spread_file(tmp_path, "lower")
    s = results.spread(low, "score")
    assert (s.worst_trained, s.best_untrained) == (0.95, 0.05)   # for "lower", worst = largest
    assert not s.separates(0.5)                                    # trained runs overlap untrained ones
    assert s.passes(0.4, 0.5) and not s.passes(0.6, 0.5)


def test_spread_rejects_wrong_input(tmp_path):
    data, _ = _spread_file(tmp_path)
    with pytest.raises(KeyError, match="no claim 'nope'"):
        results.spread(data, "nope")
    with pytest.raises(ValueError, match="scale 'spread'"):
        results.spread(make(), "score")


def test_carry_over_takes_named_parts_and_records_the_earlier_run(tmp_path):
    import dataclasses as _dc

    @_dc.dataclass
    class _Cfg:
        a: int = 1

    study = results.start_study(_Cfg, _Cfg(), "cpu")
    study.finish("demo", {"x.nz3": 1.0, "x.nz20": 2.0, "adding_t50_test_mse.irnn": 3.0, "other": 4.0},
                 {"c.nz3": [[0, 1]], "c.nz20": [[0, 2]]}, {}, seeds=[0], results_dir=tmp_path, command="first")
    metrics, curves, record = results.carry_over("demo", "cpu", ["nz3", "adding_t50"], tmp_path)
    assert metrics == {"x.nz3": 1.0, "adding_t50_test_mse.irnn": 3.0}
    assert curves == {"c.nz3": [[0.0, 1.0]]}
    assert record["metrics"] == ["adding_t50_test_mse.irnn", "x.nz3"] and record["curves"] == ["c.nz3"]
    assert record["prefixes"] == ["nz3", "adding_t50"]
    out = study.finish("demo", {**metrics, "new": 5.0}, curves, {}, seeds=[0], results_dir=tmp_path,
                       carried=record)
    assert out["provenance"]["carried_over"]["metrics"] == record["metrics"]
    assert results.read("demo", "cpu", tmp_path)["provenance"]["carried_over"]["prefixes"] == ["nz3", "adding_t50"]
    with pytest.raises(ValueError, match="match no metric"):
        results.carry_over("demo", "cpu", ["nz5"], tmp_path)
    with pytest.raises(ValueError, match="non-empty"):
        results.carry_over("demo", "cpu", [], tmp_path)
    _, _, again = results.carry_over("demo", "cpu", ["nz3"], tmp_path)
    assert again["earlier"]["prefixes"] == ["nz3", "adding_t50"]


def test_matches_prefix_respects_name_boundaries():
    assert results.matches_prefix("adding_t5_test_mse.irnn", "adding_t5")
    assert not results.matches_prefix("adding_t50_test_mse.irnn", "adding_t5")
    assert results.matches_prefix("test_elbo.nz3", "nz3") and not results.matches_prefix("test_elbo.nz30", "nz3")
    assert results.matches_prefix("pixel_mnist_test_acc.lstm", "pixel_mnist")
    assert not results.matches_prefix("permuted_pixel_mnist_test_acc.lstm", "pixel_mnist")
