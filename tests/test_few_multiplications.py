"""Tests of the few-multiplications chapter's building blocks: binary and ternary connect,
the straight-through gradient, stochastic powers of two, the shift kernel and the counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from papernotes_core import few_multiplications as fm


def test_glorot_h_is_half_the_glorot_range():
    assert fm.glorot_h(784, 1024) == pytest.approx(0.5 * math.sqrt(6 / 1808))
    with pytest.raises(ValueError, match="fan_in"):
        fm.glorot_h(0, 3)


@pytest.mark.parametrize("fn", [fm.binarize, fm.ternarize])
def test_samples_are_unbiased_within_three_standard_errors(fn):
    H = 0.25
    W = torch.linspace(-H, H, 41)
    n = 20_000
    g = torch.Generator().manual_seed(0)
    samples = torch.stack([fn(W, H, generator=g) for _ in range(n)])
    assert set(torch.unique(samples).tolist()) <= {-H, 0.0, H}
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(n)
    z = (mean - W).abs() / se.clamp_min(1e-12)
    assert bool((z[se > 0] < 3.5).all())  # 41 values: allow the odd one near 3
    assert float((mean - W).abs().max()) < 4 * float(se.max())
    # at the ends the sample is certain
    assert bool((samples[:, 0] == -H).all()) and bool((samples[:, -1] == H).all())


def test_binary_probability_is_the_hard_sigmoid():
    H = 0.5
    W = torch.full((200_000,), 0.25)  # p = (0.5 + 1) / 2 = 0.75
    s = fm.binarize(W, H, generator=torch.Generator().manual_seed(1))
    assert abs(float((s == H).float().mean()) - 0.75) < 0.005
    W = torch.full((200_000,), 0.9)   # outside [-H, H]: p clipped to 1
    assert bool((fm.binarize(W, H) == H).all())


def test_deterministic_forms():
    H = 0.1
    W = torch.tensor([-0.3, -0.06, -0.04, 0.0, 0.04, 0.06])
    assert fm.binarize(W, H, stochastic=False).tolist() == pytest.approx([-H, -H, -H, H, H, H])
    assert fm.ternarize(W, H, stochastic=False).tolist() == pytest.approx([-H, -H, 0, 0, 0, H])


def test_straight_through_gradient_reaches_w_unchanged():
    W = torch.randn(5, 4, requires_grad=True)
    Wb = fm.straight_through(W, fm.binarize(W.detach(), 0.5))
    assert bool((Wb.abs() == 0.5).all())
    x = torch.randn(3, 4)
    upstream = torch.randn(3, 5)
    (F.linear(x, Wb) * upstream).sum().backward()
    torch.testing.assert_close(W.grad, upstream.t() @ x)  # = dC/dWb


def test_quantize_pow2_is_unbiased_and_on_powers_of_two():
    x = torch.tensor([0.0, 0.3, -0.3, 1.0, 1.5, -5.0, 7.9, 1e-3])
    n = 40_000
    g = torch.Generator().manual_seed(0)
    q = torch.stack([fm.quantize_pow2(x, generator=g) for _ in range(n)])
    assert bool(fm.is_power_of_two(q).all())
    assert bool((q[:, 0] == 0).all()) and bool((q[:, 3] == 1.0).all())  # 0 stays 0, 2^0 exact
    # only the two neighbouring powers occur
    assert set(torch.unique(q[:, 1]).tolist()) == {0.25, 0.5}
    mean, se = q.mean(0), q.std(0) / math.sqrt(n)
    ok = se > 0
    assert bool(((mean - x).abs()[ok] < 3 * se[ok] + 1e-9).all())


def test_quantize_pow2_exponent_range():
    x = torch.tensor([2.0 ** -12, 100.0, 0.75])
    q = torch.stack([fm.quantize_pow2(x, min_exp=-8, max_exp=4) for _ in range(20_000)])
    assert set(torch.unique(q[:, 0]).tolist()) <= {0.0, 2.0 ** -8}
    assert abs(float(q[:, 0].mean()) - 2.0 ** -12) < 3 * float(q[:, 0].std()) / math.sqrt(20_000)
    assert bool((q[:, 1] == 16.0).all())  # clipped to 2^max_exp
    with pytest.raises(ValueError, match="empty"):
        fm.quantize_pow2(x, min_exp=3, max_exp=2)
    with pytest.raises(TypeError, match="min_exp"):
        fm.quantize_pow2(x, min_exp=1.5)


def test_shift_product_equals_the_float_product_exactly():
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(16, 7, generator=g, dtype=torch.float64)
    x = fm.quantize_pow2(torch.randn(16, 9, generator=g, dtype=torch.float64).relu(), generator=g)
    x[0, 0] = -0.125
    got = fm.shift_outer(delta, x)
    # each term delta*x is exact in float64 (x is a power of two), so compare term by term
    terms = delta.unsqueeze(2) * x.unsqueeze(1)
    assert torch.equal(got, terms.sum(0))
    torch.testing.assert_close(got, delta.t() @ x, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="0 or ±2\\^k"):
        fm.shift_outer(delta, x + 0.3)


def test_instrumented_forward_equals_f_linear_and_counts():
    H = fm.glorot_h(12, 5)
    g = torch.Generator().manual_seed(0)
    W = torch.empty(5, 12).uniform_(-H, H, generator=g)
    for fn in (fm.binarize, fm.ternarize):
        Wq = fn(W, H, generator=g)
        layer = fm.AddShiftLinear(Wq, H)
        x = torch.randn(3, 12, generator=g, dtype=torch.float32)
        torch.testing.assert_close(layer.forward(x), F.linear(x, Wq), rtol=1e-5, atol=1e-6)
        assert layer.multiplications == 3 * 5  # one per output and example
    with pytest.raises(ValueError, match="only -H, 0 and \\+H"):
        fm.AddShiftLinear(W, H)
    with pytest.raises(ValueError, match="H must be"):
        fm.AddShiftLinear(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="H must be"):
        fm.binarize(W, -1.0)


def test_multiplication_count_matches_a_hand_count():
    # 3 -> 4 -> 2, batch 5
    full = fm.count_multiplications([3, 4, 2], 5)
    assert full == {"forward": 5 * (12 + 8), "backward": 5 * (12 + 8 + 8), "total": 5 * 48}
    tq = fm.count_multiplications([3, 4, 2], 5, mode="ternary", quantized_backprop=True)
    assert tq == {"forward": 5 * (4 + 2), "backward": 5 * 4, "total": 5 * 10}
    # the instrumented layer agrees with the forward count of one layer
    H = fm.glorot_h(3, 4)
    layer = fm.AddShiftLinear(fm.binarize(torch.zeros(4, 3), H), H)
    layer.forward(torch.randn(5, 3))
    assert layer.multiplications == fm.count_multiplications([3, 4], 5, mode="binary")["forward"]
    with pytest.raises(ValueError, match="mode"):
        fm.count_multiplications([3, 4], 5, mode="quaternary")


@pytest.mark.parametrize("mode", fm.MODES)
@pytest.mark.parametrize("qb", [False, True])
def test_fewmult_linear_trains_and_clips(mode, qb):
    torch.manual_seed(0)
    layer = fm.FewMultLinear(10, 3, mode=mode, quantized_backprop=qb)
    x = torch.randn(64, 10).relu()
    y = torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        F.cross_entropy(layer(x), y).backward()
        opt.step()
        layer.clip_()
    if mode != "full":
        assert float(layer.weight.detach().abs().max()) <= layer.H + 1e-7
    layer.eval()
    with torch.no_grad():
        acc = float((layer(x).argmax(1) == y).float().mean())
    assert acc > 0.5


def test_quantized_backprop_gradient_is_unbiased():
    """The weight gradient with power-of-two inputs averages to the exact one."""
    torch.manual_seed(0)
    layer = fm.FewMultLinear(6, 4, mode="full", quantized_backprop=True)
    x = torch.rand(8, 6)
    exact = torch.autograd.grad(layer.eval()(x).pow(2).sum(), layer.weight)[0]
    layer.train()
    grads = torch.stack([torch.autograd.grad(layer(x).pow(2).sum(), layer.weight)[0] for _ in range(4000)])
    se = grads.std(0) / math.sqrt(4000)
    assert bool(((grads.mean(0) - exact).abs() < 4 * se + 1e-6).all())


def test_fewmult_linear_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode must be one of"):
        fm.FewMultLinear(3, 3, mode="binaryish")
    with pytest.raises(ValueError, match="empty"):
        fm.FewMultLinear(3, 3, min_exp=2, max_exp=-2)


# --- the study ----------------------------------------------------------------------------------------

def test_squared_hinge_by_hand():
    scores = torch.tensor([[0.5, -2.0, 0.0]])
    # true class 0: (1 - 0.5)^2; others t = -1: max(0, 1 - 2)^2 = 0, (1 + 0)^2 = 1
    assert float(fm.squared_hinge(scores, torch.tensor([0]))) == pytest.approx(0.25 + 0 + 1)
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        fm.squared_hinge(scores[0], torch.tensor([0]))


def test_bn_statistics_are_those_of_the_evaluation_network():
    torch.manual_seed(0)
    model = fm.FewMultMLP((6, 5, 3), mode="binary")
    x = torch.randn(400, 6)
    fm.recompute_bn_statistics(model, x, batch_size=100)
    bn = model.net[1]
    with torch.no_grad():
        z = x @ model.net[0].weight.t()      # real weights: the evaluation network
    batch_means = z.view(4, 100, 5).mean(1).mean(0)
    torch.testing.assert_close(bn.running_mean, batch_means, rtol=1e-5, atol=1e-6)


def test_lr_schedule_is_geometric():
    c = fm.Config()
    assert c.lr_at(0) == pytest.approx(0.3) and c.lr_at(1000) == pytest.approx(0.01)
    assert c.lr_at(500) == pytest.approx(math.sqrt(0.3 * 0.01))


def test_study_runs_and_reports_every_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "0")
    cfg = fm.Config(sizes=(784, 32, 10), epochs=2, train_limit=1_000, seeds=(0, 1))
    out = fm.run(cfg, scale="quick", write=False, device="cpu")
    m = out["metrics"]
    for v in fm.VARIANTS:
        assert 0 <= m[f"test_error.{v}"] < 0.6 and f"test_error_sd.{v}" in m
    assert m["mults.forward.full"] == 784 * 32 + 32 * 10 and m["mults.forward.ternary_qb"] == 32 + 10
    # backward, full: weight gradients of both layers + the error sent to the hidden layer
    assert m["mults.backward.full"] == (784 * 32 + 32 * 10) + 32 * 10
    assert m["mults.backward.ternary_qb"] == 32
    from papernotes_core.evaluation import welch_t_test
    w = welch_t_test([m[f"test_error.binary.seed{s}"] for s in (0, 1)], [m[f"test_error.full.seed{s}"] for s in (0, 1)])
    assert m["welch_p.binary_vs_full"] == pytest.approx(w.p) and m["diff.binary_vs_full"] == pytest.approx(w.diff)
    with pytest.raises(ValueError, match="variants"):
        fm.Config(variants=("quaternary",))


def test_exponent_range_from_bits():
    assert fm.exponent_range(3) == (-4, 3)     # the authors' convolutional layers
    assert fm.exponent_range(1, top=0) == (-1, 0)
    with pytest.raises(ValueError, match="empty"):
        fm.exponent_range(0)
    with pytest.raises(TypeError):
        fm.exponent_range(2.0)


def test_is_power_of_two_exactly():
    x = torch.tensor([0.0, 1.0, -0.5, 2.0 ** -20, 3.0, 0.3, -6.0])
    assert fm.is_power_of_two(x).tolist() == [True, True, True, True, False, False, False]
