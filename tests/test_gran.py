"""The GRAN chapter: the recurrent generator (one z reused, T = 1 is a DCGAN-style generator,
increments summed before the sigmoid, h_c encodes the previous step's output), the authors'
Adam, the shapes the conv stacks can make, the study end to end, and bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from papernotes_core import evaluation, gran
from papernotes_core.gran import model as M


def _gen(steps, **kw):
    torch.manual_seed(0)
    return M.GRANGenerator(steps, z_dim=8, width=4, **kw)


def _record_decoder_inputs(g):
    seen = []
    g.decoder.register_forward_hook(lambda mod, args, out: seen.append((args[0].clone(), args[1].clone(),
                                                                          out.clone())))
    return seen


def test_one_z_is_reused_at_every_step_and_no_randomness_is_drawn():
    g = _gen(4)
    z = torch.randn(6, 8)
    seen = _record_decoder_inputs(g)
    state = torch.get_rng_state()
    x1 = g(z)
    assert torch.equal(torch.get_rng_state(), state)         # nothing random inside
    assert len(seen) == 4
    for zt, _, _ in seen:
        assert torch.equal(zt, z)                            # the same z at every step
    assert torch.equal(g(z), x1)                             # the same z gives the same images
    assert not torch.equal(g(torch.randn(6, 8)), x1)


def test_h_c_is_zero_first_then_encodes_the_previous_steps_output():
    g = _gen(3)
    z = torch.randn(5, 8)
    seen = _record_decoder_inputs(g)
    g(z)
    assert torch.equal(seen[0][1], torch.zeros(5, 8))
    for t in (1, 2):
        prev_out = seen[t - 1][2]
        assert torch.allclose(seen[t][1], g.encoder(prev_out), atol=0, rtol=0)
        # not the running canvas: the encoding of the sum differs
        assert not torch.allclose(seen[t][1], g.encoder(sum(s[2] for s in seen[:t])), atol=1e-6) or t == 1


def test_increments_are_summed_before_the_sigmoid():
    g = _gen(3)
    z = torch.randn(5, 8)
    deltas = g.canvas(z)
    x = g(z)
    assert torch.allclose(x, torch.sigmoid(deltas[0] + deltas[1] + deltas[2]), atol=1e-6)
    assert not torch.allclose(x, sum(torch.sigmoid(d) for d in deltas) / 3, atol=1e-3)
    assert 0 < float(x.detach().min()) and float(x.detach().max()) < 1
    final, steps = g(z, return_steps=True)
    assert steps.shape == (3, 5, 1, 28, 28) and torch.allclose(steps[-1], final)
    assert torch.allclose(steps[0], torch.sigmoid(deltas[0]), atol=1e-6)


def test_one_step_is_a_single_step_generator():
    g = _gen(1)
    assert g.encoder is None
    z = torch.randn(5, 8)
    seen = _record_decoder_inputs(g)
    x = g(z)
    assert len(seen) == 1 and torch.equal(seen[0][1], torch.zeros(5, 8))
    assert torch.allclose(x, torch.sigmoid(g.decoder(z, torch.zeros(5, 8))))
    dc = _gen(1, dcgan=True)
    assert dc.encoder is None and dc.code_dim == 0
    assert dc.decoder.net[0].in_features == 8                 # reads z alone
    assert torch.allclose(dc(z), torch.sigmoid(dc.decoder(z, None)))


@pytest.mark.parametrize("size,ch,layers", [(28, 1, 2), (32, 3, 3), (64, 3, 4)])
def test_shapes_of_the_paper_sizes(size, ch, layers):
    g = M.GRANGenerator(2, z_dim=8, width=4, image_size=size, channels=ch, layers=layers)
    d = M.ConvDiscriminator(size, ch, tuple(4 * 2 ** i for i in range(layers)), 8)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, ch, size, size)
    assert d(x).shape == (3,)


def test_the_gradient_reaches_every_generator_parameter_through_the_recurrence():
    g = _gen(3)
    g(torch.randn(4, 8)).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in g.parameters())


def test_authors_adam_matches_its_formula():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = gran.AuthorsAdam([w], lr=0.01)
    ref, m, v = w.detach().double().clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t in range(1, 8):
        grad = torch.randn(5)
        w.grad = grad.clone()
        opt.step()
        g64 = grad.double()
        b1 = 1 - 0.9 * 1e-8 ** (t - 1)
        m = b1 * g64 + (1 - b1) * m
        v = 0.001 * g64 ** 2 + 0.999 * v
        ref = ref - 0.01 * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-8)
        assert torch.allclose(w.detach().double(), ref, atol=1e-6)
    # after the first step it has no momentum: m equals the last gradient
    assert torch.allclose(opt.state[w]["m"].double(), g64, atol=1e-6)
    with pytest.raises(ValueError, match="lr"):
        gran.AuthorsAdam([w], lr=0)


def test_the_dcgan_baseline_matches_the_parameter_count_of_gran_t3():
    c = gran.Config.cpu()
    g3, _ = gran.build(c, "gran_t3", 0, "cpu")
    dc, _ = gran.build(c, "dcgan", 0, "cpu")
    n3, nd = gran.count_parameters(g3), gran.count_parameters(dc)
    assert abs(nd - n3) / n3 < 0.02
    assert dc.encoder is None and g3.steps == 3


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="steps"):
        M.GRANGenerator(0)
    with pytest.raises(TypeError, match="steps"):
        M.GRANGenerator(2.0)
    with pytest.raises(ValueError, match="needs steps=1"):
        M.GRANGenerator(3, dcgan=True)
    with pytest.raises(ValueError, match="cannot be produced"):
        M.GRANGenerator(3, image_size=30)
    with pytest.raises(ValueError, match="cannot be produced"):
        M.GRANGenerator(3, image_size=28, layers=3)
    with pytest.raises(ValueError, match="cannot be produced"):
        M.ConvDiscriminator(image_size=30)
    with pytest.raises(ValueError, match="shape"):
        _gen(2)(torch.randn(3, 9))
    with pytest.raises(ValueError, match="shape"):
        M.ConvDiscriminator()(torch.rand(3, 1, 32, 32))
    with pytest.raises(ValueError, match="dataset"):
        gran.Config(dataset="svhn")
    with pytest.raises(ValueError, match="models"):
        gran.Config(models=("gran_t2",))
    with pytest.raises(ValueError, match="model must be one of"):
        gran.build(gran.Config.quick(), "gran_t7", 0, "cpu")


def test_a_battle_between_sides_of_different_image_sizes_is_refused():
    d28 = M.ConvDiscriminator(28, 1, (4, 8), 8)
    d32 = M.ConvDiscriminator(32, 1, (4, 8), 8)
    with pytest.raises(ValueError, match="one size"):
        evaluation.gam_battle(d28, d32, torch.rand(20, 1, 28, 28), torch.rand(20, 1, 32, 32), torch.rand(20, 1, 28, 28))


def test_a_model_battling_an_identical_copy_on_the_same_z_gives_ratios_of_exactly_one():
    c = dataclasses.replace(gran.Config.quick(), width=4, disc_widths=(4, 8), disc_hidden=8)
    g, d = gran.build(c, "gran_t3", 0, "cpu")
    g2, d2 = gran.build(c, "gran_t3", 1, "cpu")
    g2.load_state_dict(g.state_dict()), d2.load_state_dict(d.state_dict())
    s1, s2 = gran.sample(g, 300, seed=5, batch_size=100), gran.sample(g2, 300, seed=5, batch_size=100)
    assert torch.equal(s1, s2)
    x_test = torch.rand(400, 1, 28, 28)
    res = evaluation.gam_battle(d, d2, s1, s2, x_test, batch_size=100, n_boot=100)
    assert res.r_test == 1.0 and res.r_sample == 1.0 and res.winner == "tie"


def test_training_resumes_from_its_checkpoint_bit_for_bit(tmp_path, monkeypatch):
    c = dataclasses.replace(gran.Config.quick(), width=4, disc_widths=(4, 8), disc_hidden=8, batch_size=20,
                            epochs=2, checkpoint=True)
    x = torch.rand(60, 1, 28, 28)
    full = gran.train_model(dataclasses.replace(c, checkpoint=False), "gran_t3", 0, x, progress=False)
    # a run killed after its first epoch: one checkpoint file for both calls
    path = tmp_path / "ckpt.pt"
    monkeypatch.setattr(gran, "_checkpoint_path", lambda config, model, seed: path)
    gran.train_model(dataclasses.replace(c, epochs=1), "gran_t3", 0, x, progress=False)
    assert path.exists()
    resumed = gran.train_model(c, "gran_t3", 0, x, progress=False)
    for a, b in zip(full["G"].state_dict().values(), resumed["G"].state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full["D"].state_dict().values(), resumed["D"].state_dict().values()):
        assert torch.equal(a, b)
    assert full["curves"] == resumed["curves"]
    again = gran.train_model(c, "gran_t3", 0, x, progress=False)      # finished: loads, trains nothing
    assert again["curves"] == full["curves"]


@pytest.mark.slow
def test_the_quick_study_runs_end_to_end(tmp_path):
    c = dataclasses.replace(gran.Config.quick(), train_limit=1000, n_samples=200, test_images=300, n_boot=50,
                            judge_batch=100)
    r = gran.run(c, scale="quick", write=True, results_dir=tmp_path)
    m = r["metrics"]
    for k in ("gam_r_test", "gam_r_sample", "gam_r_test_sd", "gam_r_sample_sd"):
        assert math.isfinite(m[f"{k}.gran_t3_vs_dcgan"])
    assert (tmp_path / "quick" / "gran.json").exists()
    kept = gran.read_samples("quick", tmp_path)
    assert kept["gran_t3.seed0"].shape == (36, 1, 28, 28)
    assert kept["gran_t3.seed0.steps"].shape == (3, 8, 1, 28, 28) and kept["gran_t3.seed0.steps"].dtype == np.uint8


def test_load_data_shapes_and_ranges(monkeypatch, tmp_path):
    from papernotes_core import data
    from papernotes_core.data.mnist import Split, Splits

    c = dataclasses.replace(gran.Config.quick(), train_limit=500, test_images=200)
    d = gran.load_data(c)
    assert d["train"].shape == (500, 1, 28, 28) and d["test"].shape == (200, 1, 28, 28)
    assert 0 <= float(d["train"].min()) and float(d["train"].max()) <= 1
    # CIFAR-10: the loader's [0, 1] floats, train + valid, not divided again
    rng = np.random.default_rng(0)
    fake = lambda n: Split(rng.random((n, 3, 32, 32), dtype=np.float32), np.zeros(n, dtype=np.int64))  # noqa: E731
    monkeypatch.setattr(data, "load_cifar10", lambda *a, **k: Splits(fake(45), fake(5), fake(10)))
    d = gran.load_data(dataclasses.replace(gran.Config.paper_cifar10(), train_limit=None, test_images=None))
    assert d["train"].shape == (50, 3, 32, 32) and d["test"].shape == (10, 3, 32, 32)
    assert float(d["train"].max()) > 0.9
    # LSUN: no offline source; a clear error names the file to supply
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="lsun64.npy"):
        gran.load_data(gran.Config.paper_lsun())
    np.save(tmp_path / "lsun64.npy", np.zeros((4, 3, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(n, 3, 64, 64\)"):
        gran.load_data(gran.Config.paper_lsun())


@pytest.mark.parametrize("make", [gran.Config.paper_cifar10, gran.Config.paper_lsun])
def test_the_paper_configs_build_with_the_authors_shapes(make):
    c = make()
    size = 32 if c.dataset == "cifar10" else 64
    with torch.device("meta"):                      # the shapes without the memory
        g, d = gran.build(c, "gran_t5", 0, "meta")
        dc, _ = gran.build(c, "dcgan", 0, "meta")
        x = g(torch.zeros(c.batch_size, c.z_dim))
        assert x.shape == (c.batch_size, 3, size, size)
        assert d(x).shape == (c.batch_size,)
    assert g.steps == 5 and dc.encoder is None
    first = g.decoder.net[0]
    assert first.in_features == 2 * c.z_dim
    assert abs(gran.count_parameters(dc) - gran.count_parameters(g)) / gran.count_parameters(g) < 0.02


@pytest.mark.slow
def test_the_cifar10_paper_config_trains_for_a_step():
    c = dataclasses.replace(gran.Config.paper_cifar10(), batch_size=4, epochs=1, checkpoint=False)
    out = gran.train_model(c, "gran_t5", 0, torch.rand(4, 3, 32, 32), device="cpu", progress=False)
    assert all(math.isfinite(v) for _, v in out["curves"]["loss_d"] + out["curves"]["loss_g"])
