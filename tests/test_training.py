"""Tests for papernotes_core.training: progress bars, non-finite guard, checkpoints, the loop."""

from __future__ import annotations

import importlib.util
import io
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from papernotes_core import training
from papernotes_core.training import (
    EpochSampler,
    NonFiniteLossError,
    check_finite,
    fit,
    load_checkpoint,
    progress,
    progress_enabled,
    save_checkpoint,
)

SCRIPT = Path(__file__).with_name("_train_script.py")
_spec = importlib.util.spec_from_file_location("_train_script", SCRIPT)
train_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_script)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    """Bars off unless a test turns them on; the loop tests need no output."""
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "0")


def _assert_same_state(a, b, where="state"):
    """Exact equality of nested checkpoint states (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same_state(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# --------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------


def test_progress_yields_the_same_items_enabled_and_disabled(monkeypatch):
    items = ["a", "b", 3, None]
    for value in ("1", "0"):
        monkeypatch.setenv("PAPERNOTES_PROGRESS", value)
        assert list(progress(iter(items), total=4, desc="x", file=io.StringIO())) == items
        assert list(progress(range(5), file=io.StringIO())) == [0, 1, 2, 3, 4]


def test_progress_disabled_by_env_prints_nothing(monkeypatch):
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "0")
    out = io.StringIO()
    bar = progress(range(3), desc="hidden", file=out)
    assert bar.disable
    assert list(bar) == [0, 1, 2]
    assert out.getvalue() == ""
    assert progress_enabled() is False
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "off")
    assert progress_enabled() is False


def test_progress_enabled_draws_a_bar_with_its_label(monkeypatch):
    for value in (None, "", "1", "TRUE"):
        if value is None:
            monkeypatch.delenv("PAPERNOTES_PROGRESS", raising=False)
        else:
            monkeypatch.setenv("PAPERNOTES_PROGRESS", value)
        assert progress_enabled() is True
        out = io.StringIO()
        bar = progress(range(3), desc="shown", file=out)
        assert not bar.disable
        assert list(bar) == [0, 1, 2]
        bar.close()
        assert "shown" in out.getvalue() and "3/3" in out.getvalue()


def test_progress_manual_bar_and_quiet_redraws_off_a_terminal(monkeypatch):
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "1")
    out = io.StringIO()  # not a terminal
    with progress(total=10, desc="manual", file=out) as bar:
        bar.update(4)
        bar.update(6)
        assert bar.n == 10 and bar.total == 10
        assert bar.mininterval == 10.0
    assert "10/10" in out.getvalue()
    # caller's choice wins over the default
    assert progress(range(1), file=out, mininterval=0.5).mininterval == 0.5


def test_progress_rejects_an_unknown_env_value(monkeypatch):
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="PAPERNOTES_PROGRESS='maybe'"):
        progress(range(2))


# --------------------------------------------------------------------------------------------
# check_finite
# --------------------------------------------------------------------------------------------


def test_check_finite_returns_the_value():
    assert check_finite(torch.tensor(1.5), 0) == 1.5
    assert check_finite(torch.tensor([2.0]), 3) == 2.0
    assert check_finite(0.25, 1) == 0.25
    assert check_finite(np.float32(0.5), 1) == 0.5
    assert check_finite(torch.tensor(3.0, requires_grad=True) * 2, 1) == 6.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_raises_naming_step_and_value(bad):
    with pytest.raises(NonFiniteLossError) as info:
        check_finite(torch.tensor(bad), 17)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.step == 17
    assert (math.isnan(err.value) and math.isnan(bad)) or err.value == bad
    assert "step 17" in str(err) and str(bad) in str(err)
    assert str(err) == f"loss became {bad} at step 17; lower the learning rate or check the input"
    with pytest.raises(NonFiniteLossError, match="step 4"):
        check_finite(bad, 4)


def test_check_finite_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"one-element tensor, got shape \(2,\)"):
        check_finite(torch.zeros(2), 0)
    with pytest.raises(TypeError, match="got str"):
        check_finite("1.0", 0)
    with pytest.raises(TypeError, match="got bool"):
        check_finite(True, 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fit_stops_at_the_nonfinite_step_without_taking_it(tmp_path, bad):
    bad_step = 5
    model, opt, _, loss_at_step = train_script.build()

    def poisoned(step):
        loss = loss_at_step(step)
        return loss * bad if step == bad_step else loss

    ckpt = tmp_path / "run.pt"
    with pytest.raises(NonFiniteLossError, match=f"loss became {bad} at step {bad_step};") as info:
        fit(model, opt, poisoned, 10, checkpoint_path=ckpt, checkpoint_every=2)
    assert info.value.step == bad_step
    # the weights are those after step 4: the bad step was not applied
    ref_model, ref_opt, _, ref_loss = train_script.build()
    fit(ref_model, ref_opt, ref_loss, bad_step)
    _assert_same_state(model.state_dict(), ref_model.state_dict())
    # the last checkpoint (after step 3, i.e. 4 steps done) is still there and whole
    assert load_checkpoint(ckpt)["step"] == 4


# --------------------------------------------------------------------------------------------
# save_checkpoint / load_checkpoint
# --------------------------------------------------------------------------------------------


def _sample_state():
    return {
        "step": 7,
        "lr": 0.01,
        "name": "run",
        "flag": True,
        "nothing": None,
        "weights": {"w": torch.randn(3, 4), "b": torch.arange(4)},
        "history": [(0, 1.5), (1, 1.25)],
        "rng": torch.get_rng_state(),
        "dtype": torch.float16,
    }


def test_save_load_round_trip_creates_folders_and_leaves_no_temp_file(tmp_path):
    state = _sample_state()
    path = tmp_path / "deep" / "er" / "ck.pt"
    assert save_checkpoint(path, state) == path
    assert sorted(os.listdir(path.parent)) == ["ck.pt"]
    loaded = load_checkpoint(path)
    _assert_same_state(loaded, state)
    loaded_cpu = load_checkpoint(str(path), map_location="cpu")
    assert loaded_cpu["weights"]["w"].device.type == "cpu"
    _assert_same_state(loaded_cpu, state)
    # overwriting replaces the file, still without leftovers
    save_checkpoint(path, {"step": 8})
    assert load_checkpoint(path) == {"step": 8}
    assert sorted(os.listdir(path.parent)) == ["ck.pt"]


def test_load_uses_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    # A file holding an arbitrary Python object: a plain pickle load would accept it ...
    torch.save({"step": 1, "obj": threading.Lock, "frac": Fraction(1, 3)}, path)
    assert torch.load(path, weights_only=False)["step"] == 1
    # ... load_checkpoint refuses it, because it loads with weights_only=True
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        load_checkpoint(path)


def test_save_refuses_state_that_could_not_be_loaded_back(tmp_path):
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"state\['extra'\]\['f'\] is a fractions.Fraction"):
        save_checkpoint(path, {"step": 1, "extra": {"f": Fraction(1, 3)}})
    with pytest.raises(TypeError, match=r"state\['x'\] is a numpy.float64.*float\(x\)"):
        save_checkpoint(path, {"x": np.float64(1.0)})
    with pytest.raises(TypeError, match="state must be a dict, got list"):
        save_checkpoint(path, [1, 2])
    assert not path.exists() and os.listdir(tmp_path) == []


class _Registered:
    def __init__(self, v=0):
        self.v = v


def test_save_accepts_types_registered_as_safe_globals(tmp_path):
    path = tmp_path / "ck.pt"
    with torch.serialization.safe_globals([_Registered]):
        save_checkpoint(path, {"obj": _Registered(3)})
        assert load_checkpoint(path)["obj"].v == 3


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    old = _sample_state()
    save_checkpoint(path, old)
    before = path.read_bytes()

    real_save = torch.save

    def half_save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])  # a partial write, then a crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 99, "w": torch.ones(100)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    _assert_same_state(load_checkpoint(path), old)
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]


def test_load_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "ck.pt"
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at {missing}"):
        load_checkpoint(missing)


def test_load_refuses_a_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(TypeError, match="holds a Tensor, not a state dict"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------------
# EpochSampler
# --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    drop_last=st.booleans(),
)
def test_every_epoch_covers_each_index_once(n, batch_size, seed, drop_last):
    if drop_last and batch_size > n:
        with pytest.raises(ValueError, match="larger than n"):
            EpochSampler(n, batch_size, seed, drop_last=drop_last)
        return
    s = EpochSampler(n, batch_size, seed, drop_last=drop_last)
    spe = s.steps_per_epoch
    assert spe == (n // batch_size if drop_last else math.ceil(n / batch_size))
    for epoch in (0, 1, 5):
        batches = [s.indices(epoch * spe + i) for i in range(spe)]
        assert all(b.dtype == np.int64 for b in batches)
        assert all(len(b) == batch_size for b in batches[:-1])
        seen = np.concatenate(batches)
        assert len(np.unique(seen)) == len(seen)  # no index twice within an epoch
        if drop_last:
            assert len(seen) == spe * batch_size
        else:
            assert np.array_equal(np.sort(seen), np.arange(n))  # every index exactly once
        assert np.array_equal(seen, s.permutation(epoch)[: len(seen)])
        assert s.epoch(epoch * spe + spe - 1) == epoch


def test_sampler_follows_its_documented_formula():
    s = EpochSampler(10, 3, seed=42)
    assert s.steps_per_epoch == 4
    for step in range(12):
        epoch, i = divmod(step, 4)
        perm = np.random.default_rng([42, epoch]).permutation(10)
        assert np.array_equal(s.indices(step), perm[3 * i : 3 * i + 3])
    assert len(s.indices(3)) == 1  # the short last batch
    assert EpochSampler(10, 3, seed=42, drop_last=True).steps_per_epoch == 3
    assert EpochSampler(10, 20, seed=0).steps_per_epoch == 1
    assert len(EpochSampler(10, 20, seed=0).indices(0)) == 10


def test_sampler_same_seed_same_order_and_epochs_differ():
    a, b = EpochSampler(50, 8, seed=3), EpochSampler(50, 8, seed=3)
    steps = [0, 1, 6, 7, 100, 3]
    assert all(np.array_equal(a.indices(t), b.indices(t)) for t in steps)
    assert not np.array_equal(a.permutation(0), a.permutation(1))
    assert not np.array_equal(a.permutation(0), EpochSampler(50, 8, seed=4).permutation(0))
    # access order does not matter (no hidden state), and callers cannot corrupt the cache
    forward = [a.indices(t).copy() for t in range(20)]
    first = a.indices(0)
    first[:] = -1
    backward = [b.indices(t) for t in reversed(range(20))][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(forward, backward))
    assert np.array_equal(a.indices(0), forward[0])


def test_sampler_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        EpochSampler(0, 1, 0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        EpochSampler(5, 0, 0)
    with pytest.raises(ValueError, match="batch_size=6 is larger than n=5 with drop_last=True"):
        EpochSampler(5, 6, 0, drop_last=True)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        EpochSampler(5, 2, -1)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        EpochSampler(5.0, 2, 0)
    with pytest.raises(TypeError, match="batch_size must be an int, got bool"):
        EpochSampler(5, True, 0)
    with pytest.raises(TypeError, match="drop_last must be a bool, got int"):
        EpochSampler(5, 2, 0, drop_last=1)
    s = EpochSampler(5, 2, 0)
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        s.indices(-1)
    with pytest.raises(TypeError, match="step must be an int, got float"):
        s.indices(1.0)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        s.permutation(-2)
    assert "n=5" in repr(s)


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def _tiny():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    calls = []

    def loss_at_step(step):
        calls.append(step)
        return ((model(x) - y) ** 2).mean()

    return model, opt, loss_at_step, calls


@pytest.mark.parametrize(
    ("log_every", "expected"), [(1, list(range(10))), (3, [0, 3, 6, 9]), (4, [0, 4, 8, 9])]
)
def test_fit_records_history_every_log_every_steps(log_every, expected):
    model, opt, loss_at_step, calls = _tiny()
    logged = []
    history = fit(
        model, opt, loss_at_step, 10, log_every=log_every, on_log=lambda s, v: logged.append((s, v))
    )
    assert calls == list(range(10))
    assert [s for s, _ in history] == expected
    assert logged == history
    assert all(isinstance(s, int) and isinstance(v, float) for s, v in history)
    # the losses recorded are the ones computed, and training lowers them
    m2, o2, l2, _ = _tiny()
    direct = []
    for step in range(10):
        o2.zero_grad()
        loss = l2(step)
        direct.append(loss.item())
        loss.backward()
        o2.step()
    assert [v for _, v in history] == [direct[s] for s in expected]
    assert history[-1][1] < history[0][1]
    _assert_same_state(model.state_dict(), m2.state_dict())


def test_fit_without_checkpoint_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, opt, loss_at_step, _ = _tiny()
    assert len(fit(model, opt, loss_at_step, 3)) == 3
    assert os.listdir(tmp_path) == []
    assert fit(model, opt, loss_at_step, 0) == []


def test_fit_steps_scheduler_clips_and_sets_train_mode(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x = torch.randn(4, 3) * 100
    modes = []

    def loss_at_step(step):
        modes.append(model.training)
        return model(x).pow(2).sum()

    model.eval()
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, opt, loss_at_step, 1, scheduler=sched, clip_grad_norm=1e-3)
    moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert 0 < moved.item() <= 1e-3 * (1 + 1e-5)  # lr 1 times a gradient clipped to norm 1e-3
    assert modes == [True]
    assert opt.param_groups[0]["lr"] == 0.5  # stepped once per step
    fit(model, opt, loss_at_step, 2, scheduler=sched)
    assert opt.param_groups[0]["lr"] == 0.125


def test_fit_writes_a_complete_weights_only_checkpoint(tmp_path):
    model, opt, sched, loss_at_step = train_script.build()
    path = tmp_path / "sub" / "run.pt"
    history = fit(
        model, opt, loss_at_step, 6, checkpoint_path=path, checkpoint_every=4, scheduler=sched
    )
    saved = load_checkpoint(path)
    assert set(saved) == {"step", "model", "optimizer", "scheduler", "history", "rng"}
    assert saved["step"] == 6
    assert [tuple(h) for h in saved["history"]] == history
    _assert_same_state(saved["model"], model.state_dict())
    _assert_same_state(saved["optimizer"], opt.state_dict())
    assert saved["scheduler"] == sched.state_dict()
    assert torch.equal(saved["rng"]["cpu"], torch.get_rng_state())
    assert isinstance(saved["rng"]["cuda"], list)
    assert sorted(os.listdir(path.parent)) == ["run.pt"]


def test_rerunning_a_finished_run_is_a_no_op(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, loss_at_step, calls = _tiny()
    history = fit(model, opt, loss_at_step, 5, checkpoint_path=path, checkpoint_every=2)
    before = path.read_bytes()
    model2, opt2, loss2, calls2 = _tiny()
    assert fit(model2, opt2, loss2, 5, checkpoint_path=path, checkpoint_every=2) == history
    assert calls2 == []
    assert path.read_bytes() == before
    _assert_same_state(model2.state_dict(), model.state_dict())


class _Crash(Exception):
    pass


def _crash_then_resume(
    tmp_path, optimizer, crash_at, num_steps, every, restore_rng=True, monkeypatch=None
):
    """Train, crash at ``crash_at``, resume with fresh objects; return (state, history, step)."""
    path = tmp_path / f"{optimizer}.pt"
    model, opt, sched, loss_at_step = train_script.build(optimizer)

    def crashing(step):
        if step == crash_at:
            raise _Crash
        return loss_at_step(step)

    with pytest.raises(_Crash):
        fit(model, opt, crashing, num_steps, checkpoint_path=path, checkpoint_every=every,
            scheduler=sched, clip_grad_norm=5.0)
    saved_step = load_checkpoint(path)["step"]
    if not restore_rng:
        monkeypatch.setattr(training, "_set_rng_state", lambda rng: None)
    model, opt, sched, loss_at_step = train_script.build(optimizer)
    history = fit(model, opt, loss_at_step, num_steps, checkpoint_path=path, checkpoint_every=every,
                  scheduler=sched, clip_grad_norm=5.0)
    return load_checkpoint(path), history, saved_step


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_resumes_in_process_exactly(tmp_path, optimizer):
    num_steps = 23
    ref_model, ref_opt, ref_sched, ref_loss = train_script.build(optimizer)
    ref_history = fit(
        ref_model, ref_opt, ref_loss, num_steps, scheduler=ref_sched, clip_grad_norm=5.0
    )
    state, history, saved_step = _crash_then_resume(
        tmp_path, optimizer, crash_at=13, num_steps=num_steps, every=4
    )
    assert saved_step == 12
    assert history == ref_history and len(history) == num_steps
    _assert_same_state(state["model"], ref_model.state_dict())
    _assert_same_state(state["optimizer"], ref_opt.state_dict())
    assert state["scheduler"] == ref_sched.state_dict()


def test_resume_without_rng_restore_would_differ(tmp_path, monkeypatch):
    """Negative control: dropout makes the RNG restore matter, so the tests above can catch it."""
    num_steps = 23
    ref_model, ref_opt, ref_sched, ref_loss = train_script.build()
    ref_history = fit(
        ref_model, ref_opt, ref_loss, num_steps, scheduler=ref_sched, clip_grad_norm=5.0
    )
    state, history, _ = _crash_then_resume(
        tmp_path, "sgd", crash_at=13, num_steps=num_steps, every=4,
        restore_rng=False, monkeypatch=monkeypatch,
    )
    assert history[:12] == ref_history[:12]
    assert history[12:] != ref_history[12:]
    assert not torch.equal(state["model"]["0.weight"], ref_model.state_dict()["0.weight"])


def test_gpu_rng_state_from_another_machine_warns_instead_of_failing():
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    fake = [torch.zeros(16, dtype=torch.uint8)] * (here + 1)
    cpu = torch.get_rng_state()
    torch.manual_seed(123)
    with pytest.warns(RuntimeWarning, match=f"RNG state of {here + 1} GPU"):
        training._set_rng_state({"cpu": cpu, "cuda": fake})
    assert torch.equal(torch.get_rng_state(), cpu)  # the CPU part is still restored


def test_fit_refuses_a_checkpoint_that_does_not_match(tmp_path):
    path = tmp_path / "run.pt"
    model, opt, sched, loss_at_step = train_script.build()
    fit(model, opt, loss_at_step, 6, checkpoint_path=path, scheduler=sched)
    with pytest.raises(ValueError, match="at step 6, beyond num_steps=4"):
        fit(model, opt, loss_at_step, 4, checkpoint_path=path, scheduler=sched)
    with pytest.raises(ValueError, match="saved with a scheduler, but this run has none"):
        fit(model, opt, loss_at_step, 8, checkpoint_path=path)
    other = tmp_path / "plain.pt"
    fit(model, opt, loss_at_step, 2, checkpoint_path=other)
    with pytest.raises(ValueError, match="saved without a scheduler, but this run has one"):
        fit(model, opt, loss_at_step, 8, checkpoint_path=other, scheduler=sched)


def test_fit_rejects_bad_arguments(tmp_path):
    model, opt, loss_at_step, _ = _tiny()
    with pytest.raises(ValueError, match="checkpoint_every=5 needs a checkpoint_path"):
        fit(model, opt, loss_at_step, 10, checkpoint_every=5)
    with pytest.raises(ValueError, match="log_every must be >= 1, got 0"):
        fit(model, opt, loss_at_step, 10, log_every=0)
    with pytest.raises(ValueError, match="num_steps must be >= 0, got -1"):
        fit(model, opt, loss_at_step, -1)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0"):
        fit(model, opt, loss_at_step, 3, checkpoint_every=-2, checkpoint_path=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="clip_grad_norm must be > 0"):
        fit(model, opt, loss_at_step, 3, clip_grad_norm=0.0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        fit("model", opt, loss_at_step, 3)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        fit(model, None, loss_at_step, 3)
    with pytest.raises(TypeError, match="loss_at_step must be callable"):
        fit(model, opt, 1.0, 3)
    with pytest.raises(TypeError, match="num_steps must be an int, got float"):
        fit(model, opt, loss_at_step, 3.0)


# --------------------------------------------------------------------------------------------
# The kill test: SIGKILL a real training process midway, resume it, compare bit for bit
# --------------------------------------------------------------------------------------------


def _script(checkpoint: Path, steps: int, every: int, sleep: float) -> subprocess.Popen:
    # the child imports the same papernotes_core as this process, installed or not
    src = str(Path(training.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PAPERNOTES_PROGRESS="0", PYTHONUNBUFFERED="1", PYTHONPATH=pythonpath)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--checkpoint", str(checkpoint), "--steps", str(steps),
         "--every", str(every), "--sleep", str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen, timeout: float = 60) -> list[int]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "done"
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkilled_run_resumes_to_the_same_weights_and_history(tmp_path):
    steps, every, kill_after = 60, 7, 24  # checkpoints at 7, 14, 21, ...; kill between 21 and 28
    reference = _script(tmp_path / "reference.pt", steps, every, sleep=0.0)  # runs meanwhile
    victim_ckpt = tmp_path / "victim.pt"
    victim = _script(victim_ckpt, steps, every, sleep=0.03)
    watchdog = threading.Timer(60, victim.kill)
    watchdog.start()
    try:
        seen = []
        for line in victim.stdout:
            if line.startswith("step "):
                seen.append(int(line.split()[1]))
                if seen[-1] >= kill_after:
                    os.kill(victim.pid, signal.SIGKILL)
                    break
        victim.wait(timeout=30)
    finally:
        watchdog.cancel()
        victim.stdout.close()
        victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL, "the training process was not killed by SIGKILL"
    assert seen == list(range(kill_after + 1))

    saved_step = load_checkpoint(victim_ckpt)["step"]
    assert 0 < saved_step < steps, f"the kill did not land midway: checkpoint at step {saved_step}"
    assert saved_step % every == 0 and saved_step <= seen[-1] + 1
    assert saved_step < seen[-1] + 1, "the kill should lose some steps past the checkpoint"

    resumed_steps = _finish(_script(victim_ckpt, steps, every, sleep=0.0))
    assert resumed_steps == list(range(saved_step, steps))  # resumed, not restarted
    assert _finish(reference) == list(range(steps))

    resumed, ref = load_checkpoint(victim_ckpt), load_checkpoint(tmp_path / "reference.pt")
    assert resumed["step"] == ref["step"] == steps
    assert resumed["history"] == ref["history"] and len(ref["history"]) == steps
    for name, tensor in ref["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    _assert_same_state(resumed["optimizer"], ref["optimizer"])
    assert resumed["scheduler"] == ref["scheduler"]


def test_fit_show_progress_false_draws_no_bar(monkeypatch, capsys):
    monkeypatch.delenv("PAPERNOTES_PROGRESS", raising=False)
    model, opt, loss_at_step, _ = _tiny()
    fit(model, opt, loss_at_step, 5, desc="hidden-bar", show_progress=False)
    assert "hidden-bar" not in capsys.readouterr().err
    model, opt, loss_at_step, _ = _tiny()
    fit(model, opt, loss_at_step, 5, desc="shown-bar")
    assert "shown-bar" in capsys.readouterr().err


def test_write_atomic_replaces_whole_or_leaves_the_old_file(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    assert training.write_atomic(path, lambda f: f.write(b"first")) == path
    assert path.read_bytes() == b"first"

    def failing(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        training.write_atomic(path, failing)
    assert path.read_bytes() == b"first"                       # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]   # no temporary file left


def test_unit_cache_computes_once_and_keys_by_settings(tmp_path):
    from papernotes_core import training

    a = training.unit_cache_path(tmp_path, "run", {"lr": 0.1, "seed": 0})
    assert a == training.unit_cache_path(tmp_path, "run", {"seed": 0, "lr": 0.1})  # order-free
    assert a != training.unit_cache_path(tmp_path, "run", {"lr": 0.2, "seed": 0})
    assert a.parent == tmp_path and a.name.startswith("run-") and a.suffix == ".json"
    calls = []

    def compute():
        calls.append(1)
        return {"metrics": {"x": 1.5}}

    assert training.cached_json(a, compute) == {"metrics": {"x": 1.5}}
    assert training.cached_json(a, compute) == {"metrics": {"x": 1.5}}
    assert len(calls) == 1
